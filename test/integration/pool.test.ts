import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GROUP, type LivySession, type LivySessionPool, VERSION } from "../../src/api/index.ts";
import { CORE, resourcePath } from "../../src/kube/client.ts";
import { LivyClient } from "../../src/livy/client.ts";
import { CLAIMED_BY_LABEL, POOL_LABEL } from "../../src/operator/pool.ts";
import { LIVYSESSIONPOOLS } from "../../src/operator/pool-reconciler.ts";
import { LIVYSESSIONS } from "../../src/operator/reconciler.ts";
import { testbed } from "../testbed/context.ts";
import {
  applySession,
  createNamespace,
  exists,
  getSession,
  installCrd,
  isReady,
  kube,
  kubectl,
  metricValue,
  type OperatorProcess,
  startOperator,
  until,
  waitFor,
} from "./harness.ts";

/**
 * The warm pool (docs/warm-pool.md) with the real operator process on the test bed's control plane, the
 * servers' pods on kwok, their Livy answered by the stand-in: a pool fills itself within its budget, a
 * matching LivySession takes a warm server (its objects, its Livy session) instead of starting one, the
 * pool refills behind it, replaces a server that fails, and its deletion removes only its free servers.
 */
describe("warm pool", () => {
  let op: OperatorProcess;
  let ns: string;
  const template = {
    kind: "pyspark",
    server: { resources: { requests: { cpu: "1", memory: "1Gi" } } },
  };
  type Owned = {
    metadata: {
      ownerReferences?: Array<{ uid: string; controller?: boolean }>;
      labels?: Record<string, string>;
    };
  };

  const applyPool = async (name: string, spec: Record<string, unknown>) =>
    (await kube()).apply<LivySessionPool>(
      resourcePath(LIVYSESSIONPOOLS, ns, name),
      { apiVersion: `${GROUP}/${VERSION}`, kind: "LivySessionPool", metadata: { name, namespace: ns }, spec },
      "integration-test",
    );
  const getPool = async (name: string) =>
    (await kube()).getOrNull<LivySessionPool>(resourcePath(LIVYSESSIONPOOLS, ns, name));
  const members = async (pool: string) =>
    (
      await (
        await kube()
      ).get<{ items: LivySession[] }>(resourcePath(LIVYSESSIONS, ns), {
        query: { labelSelector: `${POOL_LABEL}=${pool}` },
      })
    ).items;
  const poolIs = (name: string, what: string, pred: (p: LivySessionPool) => boolean) =>
    until(
      `pool ${name}: ${what}`,
      async () => {
        const p = await getPool(name);
        return p && pred(p) ? p : undefined;
      },
      60_000,
    );

  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("pool");
    op = await startOperator({ name: "pool", args: ["--namespaces", ns] });
  });

  afterAll(async () => {
    await kubectl(["delete", "livysessionpools", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
      () => "",
    );
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
      () => "",
    );
    const code = await op?.stop();
    expect(code, "graceful shutdown exit code").toBe(0);
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("fills, hands a warm server to a matching LivySession, refills, keeps the budget, replaces a failed server, and leaves handed-over servers when deleted", async () => {
    const k = await kube();
    // 1. fills to size within the budget (3 cpu / 1 cpu each: size 2 fits)
    await applyPool("small", { ...template, size: 2, budget: { requests: { cpu: "3" } } });
    await poolIs("small", "2 warm", (p) => p.status?.warm === 2 && p.status?.target === 2);
    const metrics = await op.metrics();
    expect(metricValue(metrics, "livy_operator_pool_servers", { pool: "small", state: "warm" })).toBe(2);
    expect(metricValue(metrics, "livy_operator_pool_budget", { pool: "small", resource: "cpu" })).toBe(3);
    expect(metricValue(metrics, "livy_operator_pool_budget_used", { pool: "small", resource: "cpu" })).toBe(
      2,
    );
    const before = await members("small");
    expect(before).toHaveLength(2);

    // 2. a matching LivySession takes one: Ready with the pooled server's endpoints, no server of its own
    const t0 = Date.now();
    const created = await applySession(ns, "user", { ...template, idleTimeout: "1h" });
    const ready = await waitFor(ns, "user", isReady, "Ready", 30_000);
    const tookMs = Date.now() - t0;
    const server = ready.status?.server ?? "";
    expect(server.startsWith("small-p")).toBe(true);
    const member = before.find((m) => m.metadata.name === server);
    expect(member, `the server ${server} was one of the pool's`).toBeDefined();
    expect(ready.status?.serverUID).toBe(member?.metadata.uid);
    expect(ready.status?.livySessionId).toBe(member?.status?.livySessionId);
    expect(ready.status?.sessionURL).toBe(member?.status?.sessionURL);
    expect(await exists(resourcePath(CORE.deployments, ns, "livy-user"))).toBe(false);
    const deployment = await k.get<Owned>(resourcePath(CORE.deployments, ns, `livy-${server}`));
    expect(deployment.metadata.labels?.[CLAIMED_BY_LABEL]).toBe(created.metadata.uid);
    for (const path of [
      resourcePath(CORE.deployments, ns, `livy-${server}`),
      resourcePath(CORE.services, ns, `livy-${server}`),
      resourcePath(CORE.configMaps, ns, `livy-${server}`),
    ]) {
      const o = await k.get<Owned>(path);
      expect(o.metadata.ownerReferences, path).toEqual([
        expect.objectContaining({ uid: created.metadata.uid, controller: true }),
      ]);
    }
    // the pooled LivySession goes, its Livy session stays: it is the user's now
    await until("the pooled LivySession deleted", async () => !(await getSession(ns, server)));
    const livy = new LivyClient({ baseUrl: testbed().standinUrl });
    try {
      const out = await livy.session(ready.status?.livySessionId ?? -1).run("1 + 1");
      expect(out).toBeDefined();
    } finally {
      await livy.close();
    }
    // stays Ready and up to date: no rollout, no new Livy session
    await new Promise((r) => setTimeout(r, 1_500));
    const later = await getSession(ns, "user");
    expect(isReady(later as LivySession)).toBe(true);
    expect(later?.status?.livySessionId).toBe(ready.status?.livySessionId);
    console.log(`apply -> Ready from the pool: ${tookMs} ms`);

    // 3. refilled behind it
    await poolIs("small", "refilled", (p) => p.status?.warm === 2 && p.status?.handedOver === 1);
    expect(
      metricValue(await op.metrics(), "livy_operator_pool_servers", { pool: "small", state: "handed_over" }),
    ).toBe(1);

    // 4. the budget lowered below size: the target follows, the surplus goes
    await applyPool("small", { ...template, size: 2, budget: { requests: { cpu: "1500m" } } });
    await poolIs(
      "small",
      "budget-limited",
      (p) => p.status?.target === 1 && p.status?.budgetLimited === true,
    );
    await until("one free server left", async () =>
      (await members("small")).filter((m) => !m.metadata.deletionTimestamp).length === 1 ? true : undefined,
    );

    // 5. a server that fails is replaced
    const [victim] = await members("small");
    const victimId = victim?.status?.livySessionId ?? -1;
    await fetch(`${testbed().standinUrl}/sessions/${victimId}`, { method: "DELETE" });
    await until(
      "the failed server replaced",
      async () => {
        const now = await members("small");
        return now.length === 1 &&
          now[0]?.metadata.name !== victim?.metadata.name &&
          isReady(now[0] as LivySession)
          ? true
          : undefined;
      },
      60_000,
    );

    // 6. deleting the pool removes its free servers, never the one handed over
    await kubectl(["delete", "livysessionpool", "small", "-n", ns, "--wait=true", "--timeout=60s"]);
    await until(
      "the free servers gone",
      async () => ((await members("small")).length === 0 ? true : undefined),
      60_000,
    );
    expect(await exists(resourcePath(CORE.deployments, ns, `livy-${server}`))).toBe(true);
    expect(isReady((await getSession(ns, "user")) as LivySession)).toBe(true);

    // 7. the LivySession's deletion removes the server it took
    await kubectl(["delete", "livysession", "user", "-n", ns, "--wait=true", "--timeout=60s"]);
    await until(
      "the taken server removed",
      async () => ((await exists(resourcePath(CORE.deployments, ns, `livy-${server}`))) ? undefined : true),
      60_000,
    );
  });
});
