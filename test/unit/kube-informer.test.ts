import { describe, expect, it } from "vitest";
import type {
  KubeClient,
  KubeList,
  KubeObject,
  Query,
  RequestOpts,
  WatchEvent,
} from "../../src/kube/client.ts";
import { KubeApiError } from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";

/**
 * The informer against a scripted API server: each list and watch call takes the next behaviour from a
 * script, so failures, stalls and recoveries happen exactly when the test says.
 */
type ListStep = "ok" | "fail" | "hang";
type WatchStep = "fail" | "hang" | "end" | "gone";

class FakeApi {
  lists: ListStep[] = [];
  watches: WatchStep[] = [];
  listCalls = 0;
  watchCalls: Query[] = [];
  rv = 1;

  async get<T>(_path: string, opts?: RequestOpts): Promise<T> {
    this.listCalls++;
    const step = this.lists.shift() ?? "ok";
    if (step === "fail") throw new Error("connect ECONNREFUSED 127.0.0.1:6443");
    if (step === "hang") await untilAborted(opts?.signal);
    const list: KubeList<KubeObject> = {
      metadata: { resourceVersion: String(this.rv++) },
      items: [{ metadata: { name: "a", namespace: "ns", resourceVersion: "1" } }],
    };
    return list as T;
  }

  async watch<T>(
    _path: string,
    query: Query,
    _onEvent: (e: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    this.watchCalls.push(query);
    const step = this.watches.shift() ?? "hang";
    if (step === "fail") throw new Error("other side closed");
    if (step === "gone") throw new KubeApiError(410, "Expired", "too old resource version");
    if (step === "end") return;
    await untilAborted(signal);
  }
}

function untilAborted(signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) resolve();
    signal?.addEventListener("abort", () => resolve(), { once: true });
  });
}

async function until(what: string, fn: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function informer(api: FakeApi, opts: { stallTimeoutMs?: number; watchTimeoutSeconds?: number } = {}) {
  const restarts: string[] = [];
  const inf = new Informer<KubeObject>(api as unknown as KubeClient, {
    path: "/api/v1/configmaps",
    minBackoffMs: 10,
    maxBackoffMs: 40,
    onRestart: (reason) => restarts.push(reason),
    ...opts,
  });
  return { inf, restarts };
}

describe("Informer health", () => {
  it("is healthy once listed, unhealthy from a watch failure until a list succeeds again", async () => {
    const api = new FakeApi();
    api.watches = ["fail", "fail"];
    api.lists = ["ok", "fail", "fail", "ok", "fail", "ok"];
    const { inf, restarts } = informer(api);
    expect(inf.healthy).toBe(false);
    inf.start();
    await inf.waitForSync();
    // the first watch fails at once, then two relists fail: unhealthy all along
    await until("the failures", () => api.listCalls >= 3);
    expect(inf.healthy).toBe(false);
    expect(inf.hasSynced).toBe(true);
    await until("a successful relist", () => api.listCalls >= 4);
    await until("healthy again", () => inf.healthy);
    expect(restarts.every((r) => r === "error")).toBe(true);
    await inf.stop();
    expect(inf.healthy).toBe(false);
  });

  it("relists on 410 Gone and counts it as expired", async () => {
    const api = new FakeApi();
    api.watches = ["gone"];
    const { inf, restarts } = informer(api);
    inf.start();
    await inf.waitForSync();
    await until("relist after 410", () => api.listCalls >= 2 && inf.healthy);
    expect(restarts).toEqual(["expired"]);
    await inf.stop();
  });

  it("restarts a stalled watch once, and does not count the stall again while the relist hangs", async () => {
    const api = new FakeApi();
    api.lists = ["ok", "hang"];
    api.watches = ["hang"];
    const { inf, restarts } = informer(api, { stallTimeoutMs: 100 });
    inf.start();
    await inf.waitForSync();
    await until("stall detected", () => restarts.length > 0);
    expect(inf.healthy).toBe(false);
    // the relist hangs (a black-holed API server): the watchdog must not fire again and again meanwhile
    await new Promise((r) => setTimeout(r, 400));
    expect(restarts).toEqual(["stalled"]);
    expect(inf.healthy).toBe(false);
    await inf.stop();
  });

  it("resumes a watch the server ended from the last resourceVersion, with the configured timeout", async () => {
    const api = new FakeApi();
    api.watches = ["end", "hang"];
    const { inf, restarts } = informer(api, { watchTimeoutSeconds: 7 });
    inf.start();
    await inf.waitForSync();
    await until("second watch", () => api.watchCalls.length >= 2);
    expect(api.listCalls).toBe(1);
    expect(api.watchCalls.map((q) => [q.resourceVersion, q.timeoutSeconds])).toEqual([
      ["1", 7],
      ["1", 7],
    ]);
    expect(restarts).toEqual([]);
    expect(inf.healthy).toBe(true);
    await inf.stop();
  });

  it("stops at once even while backing off after failures", async () => {
    const api = new FakeApi();
    api.lists = ["ok", ...Array.from({ length: 50 }, () => "fail" as const)];
    api.watches = ["fail"];
    const restarts: string[] = [];
    const inf = new Informer<KubeObject>(api as unknown as KubeClient, {
      path: "/api/v1/configmaps",
      minBackoffMs: 60_000,
      maxBackoffMs: 60_000,
      onRestart: (r) => restarts.push(r),
    });
    inf.start();
    await inf.waitForSync();
    await until("first failure", () => restarts.length > 0);
    const started = Date.now();
    await inf.stop();
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe("Informer transform and index", () => {
  /** Lists `items`, then delivers `events` on the watch and stays open. */
  function api(items: KubeObject[], events: WatchEvent<KubeObject>[]) {
    return {
      async get<T>(): Promise<T> {
        return { metadata: { resourceVersion: "10" }, items: structuredClone(items) } as T;
      },
      async watch<T>(_p: string, _q: Query, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal) {
        for (const e of events) onEvent(structuredClone(e) as WatchEvent<T>);
        await untilAborted(signal);
      },
    } as unknown as KubeClient;
  }
  const pod = (name: string, owner: string, rv: string, extra: object = {}): KubeObject =>
    ({
      metadata: { name, namespace: "ns", resourceVersion: rv, labels: { owner } },
      spec: { containers: [{ name: "big", env: "x".repeat(1000) }] },
      ...extra,
    }) as KubeObject;

  it("keeps only what the transform keeps, and finds objects by index as they come, move and go", async () => {
    const inf = new Informer<KubeObject>(
      api(
        [pod("p1", "a", "1"), pod("p2", "a", "2"), pod("p3", "b", "3")],
        [
          { type: "MODIFIED", object: pod("p2", "b", "11") },
          { type: "DELETED", object: pod("p1", "a", "12") },
          { type: "ADDED", object: pod("p4", "c", "13") },
        ],
      ),
      {
        path: "/api/v1/pods",
        transform: (o) => ({ metadata: o.metadata }),
        indexBy: (o) => o.metadata?.labels?.owner,
      },
    );
    inf.start();
    await inf.waitForSync();
    await new Promise((r) => setTimeout(r, 20));
    const names = (v: string) => inf.byIndex(v).map((o) => o.metadata?.name);
    expect(names("a")).toEqual([]);
    expect(names("b").sort()).toEqual(["p2", "p3"]);
    expect(names("c")).toEqual(["p4"]);
    expect(names("none")).toEqual([]);
    expect((inf.get("ns/p3") as { spec?: unknown }).spec).toBeUndefined();
    // what the reconciler wrote goes through the transform and the index too
    inf.setIfNewer(pod("p5", "a", "20"));
    expect(names("a")).toEqual(["p5"]);
    expect((inf.get("ns/p5") as { spec?: unknown }).spec).toBeUndefined();
    expect([...inf.values()].length).toBe(4);
    await inf.stop();
  });

  it("marks an object the caller deleted as being deleted, until the watch's DELETED event removes it", async () => {
    let deliver: (e: WatchEvent<KubeObject>) => void = () => {};
    let watching = false;
    const kube = {
      async get<T>(): Promise<T> {
        return { metadata: { resourceVersion: "10" }, items: [pod("p1", "a", "1")] } as T;
      },
      async watch<T>(_p: string, _q: Query, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal) {
        deliver = (e) => onEvent(e as WatchEvent<T>);
        watching = true;
        await untilAborted(signal);
      },
    } as unknown as KubeClient;
    const inf = new Informer<KubeObject>(kube, {
      path: "/api/v1/pods",
      indexBy: (o) => o.metadata?.labels?.owner,
    });
    inf.start();
    await inf.waitForSync();
    inf.markDeleted("ns/p1", "2026-11-28T15:00:00Z");
    expect(inf.get("ns/p1")?.metadata?.deletionTimestamp).toBe("2026-11-28T15:00:00Z");
    expect(inf.byIndex("a").map((o) => o.metadata?.name)).toEqual(["p1"]);
    inf.markDeleted("ns/none");
    expect(inf.get("ns/none")).toBeUndefined();
    await until("the watch open", () => watching);
    deliver({ type: "DELETED", object: pod("p1", "a", "12") });
    expect(inf.get("ns/p1")).toBeUndefined();
    expect(inf.byIndex("a")).toEqual([]);
    await inf.stop();
  });
});
