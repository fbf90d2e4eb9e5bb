import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_WARMUP_CODE, type LivySession } from "../../src/api/index.ts";
import { CORE, resourcePath } from "../../src/kube/client.ts";
import { LivyClient } from "../../src/livy/client.ts";
import { LIVYSESSIONS } from "../../src/operator/reconciler.ts";
import { testbed } from "../testbed/context.ts";
import {
  applySession,
  condition,
  createNamespace,
  exists,
  getSession,
  installCrd,
  isReady,
  kube,
  kubectl,
  metricValue,
  type OperatorProcess,
  phaseIs,
  startOperator,
  until,
  waitFor,
} from "./harness.ts";

/**
 * The real operator process on the test bed's real control plane (kwok plays the kubelet), its Livy
 * servers answered by the stand-in. Each test drives one LivySession through a part of its lifecycle and
 * asserts on status, conditions, owned objects and the Livy sessions the stand-in holds.
 */
describe("operator lifecycle", () => {
  let op: OperatorProcess;
  let ns: string;
  const standin = () => testbed().standinUrl;
  const standinSession = async (id: number) => fetch(`${standin()}/sessions/${id}`);
  const owned = (name: string) => [
    resourcePath(CORE.deployments, ns, `livy-${name}`),
    resourcePath(CORE.services, ns, `livy-${name}`),
    resourcePath(CORE.configMaps, ns, `livy-${name}`),
  ];
  const allOwnedGone = async (name: string) => (await Promise.all(owned(name).map(exists))).every((e) => !e);
  /** Parked on its own server: the Deployment gone, its Service and ConfigMap kept for the wake. */
  const parkedObjects = async (name: string) =>
    JSON.stringify(await Promise.all(owned(name).map(exists))) === JSON.stringify([false, true, true]);
  const allOwnedExist = async (name: string) => (await Promise.all(owned(name).map(exists))).every((e) => e);

  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("op");
    op = await startOperator({ name: "lifecycle" });
  });

  afterAll(async () => {
    // finalizers need the operator: delete the sessions before stopping it
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
      () => "",
    );
    const code = await op?.stop();
    expect(code, "graceful shutdown exit code").toBe(0);
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("creates the server lazily and reports Ready with endpoints", async () => {
    const created = await applySession(ns, "a", { kind: "pyspark", idleTimeout: "1h" });
    const ls = await waitFor(ns, "a", isReady, "Ready");
    const st = ls.status ?? {};
    expect(st.phase).toBe("Ready");
    expect(st.observedGeneration).toBe(created.metadata.generation);
    expect(st.serverURL).toBe(standin());
    expect(st.livySessionId).toBeTypeOf("number");
    expect(st.sessionURL).toBe(`${standin()}/sessions/${st.livySessionId}`);
    expect(st.livySessionState).toBe("idle");
    expect(st.readyTime).toBeTruthy();
    expect(ls.metadata.finalizers).toContain("livy.dev/finalizer");
    expect(Object.fromEntries((st.conditions ?? []).map((c) => [c.type, c.status]))).toEqual({
      Idle: "False",
      Ready: "True",
      ServerReady: "True",
      SessionReady: "True",
    });
    for (const path of owned("a")) {
      const o = await (await kube()).get<{
        metadata: { ownerReferences: Array<{ uid: string; controller: boolean }> };
      }>(path);
      expect(o.metadata.ownerReferences).toEqual([
        expect.objectContaining({ uid: created.metadata.uid, controller: true }),
      ]);
    }
    const livy = (await (await standinSession(st.livySessionId ?? -1)).json()) as {
      state: string;
      name: string;
      kind: string;
    };
    expect(livy).toMatchObject({ state: "idle", kind: "pyspark" });
    expect(livy.name.startsWith(`${ns}.a.`)).toBe(true);
    const events = await kubectl([
      "get",
      "events",
      "-n",
      ns,
      "--field-selector",
      "involvedObject.name=a",
      "-o",
      "jsonpath={.items[*].reason}",
    ]);
    expect(events).toContain("Ready");
    const printed = await kubectl(["get", "livysessions", "a", "-n", ns]);
    expect(printed).toMatch(/NAME\s+PHASE\s+READY\s+REASON\s+STATE\s+ENDPOINT\s+AGE/);
    expect(printed).toMatch(/a\s+Ready\s+True\s+Ready\s+idle\s+http:/);
  });

  it("counts a running statement as activity and tears the server down after idleTimeout, keeping the resource", async () => {
    await applySession(ns, "b", { kind: "pyspark", idleTimeout: "3s" });
    const ready = await waitFor(ns, "b", isReady, "Ready");
    const id = ready.status?.livySessionId ?? -1;
    const client = new LivyClient({ baseUrl: standin() });
    try {
      const handle = await client.session(id).submit("time.sleep(5)");
      // 4 s in, the 3 s idleTimeout has passed, but the statement is running: still Ready
      await new Promise((r) => setTimeout(r, 4_000));
      expect(isReady((await getSession(ns, "b")) as LivySession)).toBe(true);
      await handle.result;
    } finally {
      await client.close();
    }
    const done = Date.now();
    const idle = await waitFor(ns, "b", phaseIs("Idle"), "Idle", 20_000);
    expect(Date.now() - done).toBeGreaterThanOrEqual(2_000);
    expect(condition(idle, "Idle")).toMatchObject({ status: "True", reason: "IdleTimeout" });
    expect(condition(idle, "Ready")).toMatchObject({ status: "False", reason: "IdleTimeout" });
    expect(idle.status?.sessionURL).toBeUndefined();
    expect(idle.status?.livySessionId).toBeUndefined();
    expect(idle.status?.idleSince).toBeTruthy();
    expect(Date.parse(idle.status?.lastActivityTime ?? "")).toBeGreaterThanOrEqual(done - 1_500);
    await until("the Deployment removed, its Service and ConfigMap kept", () => parkedObjects("b"));
    expect((await standinSession(id)).status).toBe(404);
    expect(metricValue(await op.metrics(), "livy_operator_idle_teardowns_total")).toBeGreaterThanOrEqual(1);
    // the resource stays, and stays idle: no server comes back without a demand
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await getSession(ns, "b"))?.status?.phase).toBe("Idle");
    expect(await parkedObjects("b")).toBe(true);
  });

  it("counts a statement in another Livy session on its server as activity: the teardown would end it too", async () => {
    await applySession(ns, "h", { kind: "pyspark", idleTimeout: "3s" });
    await waitFor(ns, "h", isReady, "Ready");
    const client = new LivyClient({ baseUrl: standin() });
    const other = await client.createSession({ kind: "pyspark", name: `notebook-${ns}` });
    try {
      const session = client.session(other.id);
      await session.waitForIdle({ timeoutMs: 20_000 });
      const handle = await session.submit("time.sleep(6)");
      // 5 s in, the 3 s idleTimeout has passed, but a statement runs on the server: still Ready
      await new Promise((r) => setTimeout(r, 5_000));
      expect(isReady((await getSession(ns, "h")) as LivySession)).toBe(true);
      await handle.result;
      const done = Date.now();
      const idle = await waitFor(ns, "h", phaseIs("Idle"), "Idle", 20_000);
      expect(Date.parse(idle.status?.lastActivityTime ?? "")).toBeGreaterThanOrEqual(done - 1_500);
    } finally {
      await client.deleteSession(other.id).catch(() => undefined);
      await client.close();
    }
  });

  it("wakes on the livy.dev/demanded-at annotation with a new Livy session", async () => {
    const before = await getSession(ns, "b");
    expect(before?.status?.phase).toBe("Idle");
    const demand = new Date().toISOString();
    await kubectl([
      "annotate",
      "livysession",
      "b",
      "-n",
      ns,
      `livy.dev/demanded-at=${demand}`,
      "--overwrite",
    ]);
    const woke = await waitFor(ns, "b", isReady, "Ready after wake");
    expect(woke.status?.demandedAt).toBe(demand);
    expect(condition(woke, "Idle")).toMatchObject({ status: "False", reason: "Demanded" });
    expect(await allOwnedExist("b")).toBe(true);
    expect((await standinSession(woke.status?.livySessionId ?? -1)).status).toBe(200);
    expect(
      metricValue(await op.metrics(), "livy_operator_demand_to_ready_seconds_count"),
    ).toBeGreaterThanOrEqual(2);
  });

  it("deploys nothing while suspended and starts when suspend turns false", async () => {
    await applySession(ns, "c", { kind: "spark", suspend: true });
    const s = await waitFor(ns, "c", phaseIs("Suspended"), "Suspended");
    expect(condition(s, "Idle")).toMatchObject({ status: "True", reason: "Suspended" });
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await allOwnedGone("c")).toBe(true);
    await applySession(ns, "c", { kind: "spark", suspend: false });
    const r = await waitFor(ns, "c", isReady, "Ready after resume");
    expect(r.status?.phase).toBe("Ready");
    // and suspending a running session tears it down
    await applySession(ns, "c", { kind: "spark", suspend: true });
    await waitFor(ns, "c", phaseIs("Suspended"), "Suspended again");
    await until("the Deployment removed, its Service and ConfigMap kept", () => parkedObjects("c"));
    expect((await standinSession(r.status?.livySessionId ?? -1)).status).toBe(404);
  });

  it("on delete, deletes the Livy session, lets owned objects be collected and removes its finalizer", async () => {
    const ls = await getSession(ns, "a");
    const id = ls?.status?.livySessionId ?? -1;
    expect((await standinSession(id)).status).toBe(200);
    await (await kube()).delete(resourcePath(LIVYSESSIONS, ns, "a"));
    await until("LivySession gone", async () => (await getSession(ns, "a")) === null);
    expect((await standinSession(id)).status).toBe(404);
    await until("owned objects garbage-collected", () => allOwnedGone("a"), 60_000);
  });

  it("FailFast: a Livy session that dies puts the resource in Failed at once, with the reason, and removes the server", async () => {
    await applySession(ns, "d", { kind: "pyspark", failurePolicy: "FailFast" });
    const ready = await waitFor(ns, "d", isReady, "Ready");
    const id = ready.status?.livySessionId ?? -1;
    const killedAt = Date.now();
    expect((await fetch(`${standin()}/_standin/sessions/${id}/kill`, { method: "POST" })).ok).toBe(true);
    const failed = await waitFor(ns, "d", phaseIs("Failed"), "Failed", 10_000);
    // the operator polls Ready sessions every 500 ms here; it must act within 5 s of seeing the death
    expect(Date.now() - killedAt).toBeLessThan(5_000);
    expect(condition(failed, "Ready")).toMatchObject({ status: "False", reason: "SessionDead" });
    expect(failed.status?.message).toContain("SessionDead");
    expect(failed.status?.livySessionState).toBe("dead");
    await until("server removed", () => allOwnedGone("d"));
    // no retry: it stays Failed
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await getSession(ns, "d"))?.status?.phase).toBe("Failed");
    // a new demand starts it again
    await kubectl([
      "annotate",
      "livysession",
      "d",
      "-n",
      ns,
      `livy.dev/demanded-at=${new Date().toISOString()}`,
    ]);
    await waitFor(ns, "d", isReady, "Ready after a new demand");
  });

  it("Recover: a dead Livy session is replaced and the restart counted; RestartLimitReached after maxRestarts", async () => {
    await applySession(ns, "e", { kind: "pyspark", failurePolicy: "Recover", maxRestarts: 1 });
    const first = await waitFor(ns, "e", isReady, "Ready");
    const id1 = first.status?.livySessionId ?? -1;
    await fetch(`${standin()}/_standin/sessions/${id1}/kill`, { method: "POST" });
    const second = await waitFor(
      ns,
      "e",
      (ls) => isReady(ls) && ls.status?.livySessionId !== id1,
      "Ready with a new Livy session",
      15_000,
    );
    expect(second.status?.restarts).toBe(1);
    await fetch(`${standin()}/_standin/sessions/${second.status?.livySessionId}/kill`, { method: "POST" });
    const failed = await waitFor(ns, "e", phaseIs("Failed"), "Failed after maxRestarts", 15_000);
    expect(condition(failed, "Ready")).toMatchObject({ status: "False", reason: "RestartLimitReached" });
    expect(failed.status?.message).toContain("SessionDead");
  });

  it("warms the Livy session before Ready: the warm-up ran, once, before readyTime; the user's first statement comes after it", async () => {
    const ls = await applySession(ns, "w", { kind: "pyspark", idleTimeout: "1h" }).then(() =>
      waitFor(ns, "w", isReady, "Ready"),
    );
    const id = ls.status?.livySessionId ?? -1;
    const list = (await (await fetch(`${standin()}/sessions/${id}/statements`)).json()) as {
      statements: Array<{ id: number; code: string; state: string; completed: number }>;
    };
    expect(list.statements.map((s) => [s.code, s.state])).toEqual([
      [DEFAULT_WARMUP_CODE.pyspark, "available"],
    ]);
    const readyMs = Date.parse(ls.status?.readyTime ?? "");
    // readyTime has second precision: the warm-up completed before the second Ready was written in ended
    expect(list.statements[0]?.completed).toBeLessThan(readyMs + 1_000);
    const client = new LivyClient({ baseUrl: standin() });
    try {
      const first = await client.session(id).submit("1 + 1");
      expect(first.id).toBe(1);
      expect((await first.result).text).toBe("2");
    } finally {
      await client.close();
    }
  });

  it("a warm-up that fails is WarmupFailed with Livy's error (FailFast), server removed; warmup.enabled false skips it", async () => {
    await applySession(ns, "wf", {
      kind: "pyspark",
      warmup: { code: 'raise ValueError("no warm-up today")' },
    });
    const failed = await waitFor(ns, "wf", phaseIs("Failed"), "Failed by the warm-up");
    expect(condition(failed, "Ready")).toMatchObject({ status: "False", reason: "WarmupFailed" });
    expect(failed.status?.message).toMatch(/ValueError: no warm-up today/);
    await until("server removed", () => allOwnedGone("wf"));
    const off = await applySession(ns, "wo", { kind: "pyspark", warmup: { enabled: false } }).then(() =>
      waitFor(ns, "wo", isReady, "Ready"),
    );
    const list = (await (
      await fetch(`${standin()}/sessions/${off.status?.livySessionId}/statements`)
    ).json()) as {
      total_statements: number;
    };
    expect(list.total_statements).toBe(0);
  });

  it("ends at startupTimeout with a reason when the Livy session never becomes idle", async () => {
    await fetch(`${standin()}/_standin/config`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sessionStartupMs: 600_000 }),
    });
    try {
      await applySession(ns, "f", { kind: "pyspark", startupTimeout: "3s" });
      const failed = await waitFor(ns, "f", phaseIs("Failed"), "Failed by startupTimeout", 15_000);
      expect(condition(failed, "Ready")).toMatchObject({ status: "False", reason: "StartupTimeout" });
      expect(failed.status?.message).toMatch(/within 3s/);
      await until("server removed", () => allOwnedGone("f"));
    } finally {
      await fetch(`${standin()}/_standin/config`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sessionStartupMs: 300 }),
      });
    }
  });

  it("auth from a Secret: waits with AuthSecretInvalid until the Secret exists, and never shows its values", async () => {
    const password = "s3cr3t-Pa55word-value";
    await applySession(ns, "g", { kind: "pyspark", auth: { type: "Basic", secretName: "livy-creds" } });
    const waiting = await waitFor(
      ns,
      "g",
      (ls) => condition(ls, "Ready")?.reason === "AuthSecretInvalid",
      "AuthSecretInvalid",
    );
    expect(condition(waiting, "Ready")?.message).toBe("Secret livy-creds not found");
    await (await kube()).create(resourcePath(CORE.secrets, ns), {
      metadata: { name: "livy-creds" },
      stringData: { username: "analyst" },
    });
    const partial = await waitFor(
      ns,
      "g",
      (ls) => /lacks password/.test(condition(ls, "Ready")?.message ?? ""),
      "missing key named",
      15_000,
    );
    expect(condition(partial, "Ready")?.message).toBe(
      "Secret livy-creds lacks password (needed by auth type Basic)",
    );
    await (await kube()).mergePatch(resourcePath(CORE.secrets, ns, "livy-creds"), {
      stringData: { password },
    });
    const ready = await waitFor(ns, "g", isReady, "Ready once the Secret is complete", 20_000);
    const everything = [
      JSON.stringify(ready),
      await kubectl(["get", "events", "-n", ns, "-o", "json"]),
      op.logs(),
    ].join("\n");
    expect(everything).not.toContain(password);
    expect(everything).not.toContain(Buffer.from(password).toString("base64"));
  });

  it("reports reconcile metrics under controller-runtime's names, without errors", async () => {
    const m = await op.metrics();
    expect(
      metricValue(m, "controller_runtime_reconcile_total", { controller: "livysession" }),
    ).toBeGreaterThan(0);
    expect(metricValue(m, "controller_runtime_reconcile_total", { result: "error" })).toBe(0);
    expect(m).toContain("controller_runtime_reconcile_time_seconds_bucket");
    expect(m).toContain("workqueue_depth");
    expect(m).toMatch(/livy_operator_sessions\{phase="(Ready|Idle|Failed|Suspended)"\}/);
  });
});
