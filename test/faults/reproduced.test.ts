import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demandToken, isFailed, type LivySession } from "../../src/api/index.ts";
import { CORE, resourcePath } from "../../src/kube/client.ts";
import {
  applySession,
  condition,
  createNamespace,
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
} from "../integration/harness.ts";
import { testbed } from "../testbed/context.ts";
import { readState } from "../testbed/testbed.ts";
import {
  kubeconfigVia,
  owned,
  phaseRecorder,
  reconcileErrors,
  SplitProxy,
  sleep,
  standinSessions,
} from "./helpers.ts";

/**
 * The cases issue 12 reproduced on the real control plane, each of which used to fail a session, freeze
 * its status or ignore its spec, plus the watch decoder's: events split at every byte.
 */
interface DeploymentLike {
  metadata: { generation?: number };
  spec: { template: { metadata: { annotations?: Record<string, string> } } };
}

const deployment = async (ns: string, name: string) =>
  (await kube()).get<DeploymentLike>(resourcePath(CORE.deployments, ns, `livy-${name}`));

const liveLivySessions = async (ns: string, name: string) =>
  (await standinSessions(`${ns}.${name}.`)).filter((s) => !["dead", "killed", "error"].includes(s.state));

async function events(ns: string, name: string): Promise<string[]> {
  const out = await kubectl([
    "get",
    "events",
    "-n",
    ns,
    "--field-selector",
    `involvedObject.name=${name}`,
    "-o",
    "jsonpath={.items[*].reason}",
  ]);
  return out.split(/\s+/).filter(Boolean);
}

describe("issue 12, reproduced", () => {
  let ns: string;
  let op: OperatorProcess;

  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("repro");
    op = await startOperator({ name: "reproduced", args: ["--namespaces", ns] });
  });

  afterAll(async () => {
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
      () => "",
    );
    await op?.stop();
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("editing spec.server.podAnnotations on a Ready session restarts its server under Restarting, never Failed", async () => {
    const spec = { kind: "pyspark", idleTimeout: "1h", server: { podAnnotations: { team: "a" } } };
    await applySession(ns, "edit", spec);
    const ready = await waitFor(ns, "edit", isReady, "Ready");
    const phases = await phaseRecorder(ns);
    try {
      await applySession(ns, "edit", { ...spec, server: { podAnnotations: { team: "b" } } });
      const restarting = await waitFor(
        ns,
        "edit",
        (ls) => condition(ls, "Ready")?.reason === "Restarting",
        "Restarting",
        15_000,
      ).catch(() => null);
      const again = await waitFor(
        ns,
        "edit",
        (ls) => isReady(ls) && ls.status?.livySessionId !== ready.status?.livySessionId,
        "Ready with a new Livy session",
        30_000,
      );
      expect(phases.seen.get("edit")).not.toContain("Failed");
      // the restart may pass faster than a poll of the test sees it; its event stays
      expect(restarting !== null || (await events(ns, "edit")).includes("Restarting")).toBe(true);
      expect((await deployment(ns, "edit")).spec.template.metadata.annotations?.team).toBe("b");
      const live = await liveLivySessions(ns, "edit");
      expect(
        live.map((s) => s.id),
        "the old Livy session deleted, one new one",
      ).toEqual([again.status?.livySessionId]);
      expect(await reconcileErrors(op)).toBe(0);
    } finally {
      await phases.stop();
    }
  });

  it("edits that need no restart (idleTimeout, a label, an annotation) restart nothing", async () => {
    const spec = { kind: "pyspark", idleTimeout: "1h", server: { podAnnotations: { team: "a" } } };
    await applySession(ns, "calm", spec);
    const ready = await waitFor(ns, "calm", isReady, "Ready");
    const generation = (await deployment(ns, "calm")).metadata.generation;
    await applySession(ns, "calm", { ...spec, idleTimeout: "2h" });
    await kubectl(["label", "livysession", "calm", "-n", ns, "owner=data-team"]);
    await kubectl(["annotate", "livysession", "calm", "-n", ns, "note=hello"]);
    await until(
      "the edit observed",
      async () => (await getSession(ns, "calm"))?.status?.observedGeneration === 2,
      15_000,
    );
    await sleep(2_000);
    const after = await getSession(ns, "calm");
    expect(after && isReady(after)).toBe(true);
    expect(after?.status?.livySessionId).toBe(ready.status?.livySessionId);
    expect((await deployment(ns, "calm")).metadata.generation).toBe(generation);
    expect(await events(ns, "calm")).not.toContain("Restarting");
  });

  it("a 100-character livy.dev/demanded-at annotation: the status is written, the demand served once", async () => {
    await applySession(ns, "long", { kind: "pyspark", idleTimeout: "2s" });
    await waitFor(ns, "long", isReady, "Ready");
    await waitFor(ns, "long", phaseIs("Idle"), "Idle", 20_000);
    const demand = `${new Date().toISOString()}-${"x".repeat(100)}`.slice(0, 100);
    await kubectl([
      "annotate",
      "livysession",
      "long",
      "-n",
      ns,
      `livy.dev/demanded-at=${demand}`,
      "--overwrite",
    ]);
    const woke = await waitFor(ns, "long", isReady, "Ready after the demand", 20_000);
    expect(woke.status?.demandedAt).toBe(demandToken(demand));
    // served once: it idles out again and stays Idle under the same annotation
    await waitFor(ns, "long", phaseIs("Idle"), "Idle again", 20_000);
    await sleep(3_000);
    expect((await getSession(ns, "long"))?.status?.phase).toBe("Idle");
    expect(op.logs()).not.toMatch(/"name":"long".*"level":50|status\.demandedAt: Too long/);
    expect(await reconcileErrors(op)).toBe(0);
  });

  it("a missing auth Secret does not outlast startupTimeout: Failed StartupTimeout naming it, server removed", async () => {
    const started = Date.now();
    await applySession(ns, "nosecret", {
      kind: "pyspark",
      startupTimeout: "5s",
      auth: { type: "Bearer", secretName: "nope" },
    });
    await waitFor(
      ns,
      "nosecret",
      (ls) => condition(ls, "Ready")?.reason === "AuthSecretInvalid",
      "waiting",
      15_000,
    );
    const failed = await waitFor(ns, "nosecret", (ls: LivySession) => isFailed(ls), "Failed", 20_000);
    const after = Date.now() - started;
    expect(condition(failed, "Ready")).toMatchObject({ reason: "StartupTimeout" });
    expect(condition(failed, "Ready")?.message).toMatch(
      /not Ready within 5s: AuthSecretInvalid: Secret nope not found/,
    );
    await until("server removed", async () => !(await owned(ns)).deployments.includes("livy-nosecret"));
    expect(after).toBeLessThan(15_000);
    console.log(`[faults] missing auth Secret, startupTimeout 5s: Failed ${after} ms after creation`);
  });
});

describe("watch events split at every byte", () => {
  let ns: string;
  let op: OperatorProcess;
  let proxy: SplitProxy;

  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("split");
    const state = readState(testbed().stateDir);
    if (!state) throw new Error("no test bed state");
    proxy = new SplitProxy(state.apiserverUrl);
    await proxy.listen();
    op = await startOperator({
      name: "split",
      args: ["--namespaces", ns, "--kubeconfig", kubeconfigVia(proxy.url, "split")],
    });
  });

  afterAll(async () => {
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
      () => "",
    );
    await op?.stop();
    await proxy?.close();
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("multi-byte characters in a spec survive: nothing re-applied, the Ready session untouched", async () => {
    const greeting = "grüße, 日本語, 😀";
    await applySession(ns, "utf8", {
      kind: "pyspark",
      idleTimeout: "1h",
      server: { podAnnotations: { greeting }, env: [{ name: "GREETING", value: greeting }] },
    });
    const ready = await waitFor(ns, "utf8", isReady, "Ready", 60_000);
    const generation = (await deployment(ns, "utf8")).metadata.generation;
    const phases = await phaseRecorder(ns);
    try {
      // each edit of the LivySession reaches the operator as a watch event, split byte by byte
      for (let i = 0; i < 3; i++) {
        await kubectl(["annotate", "livysession", "utf8", "-n", ns, `touch=${i}-ü`, "--overwrite"]);
        await sleep(1_000);
      }
      await sleep(3_000);
      expect(proxy.bytesSplit, "watch bytes delivered one at a time").toBeGreaterThan(2_000);
      const d = await deployment(ns, "utf8");
      expect(d.spec.template.metadata.annotations?.greeting).toBe(greeting);
      expect(d.metadata.generation, "the Deployment was not applied again").toBe(generation);
      const after = await getSession(ns, "utf8");
      expect(after?.status?.livySessionId).toBe(ready.status?.livySessionId);
      expect(phases.seen.get("utf8")).toEqual(["Ready"]);
      expect(await reconcileErrors(op)).toBe(0);
      expect(metricValue(await op.metrics(), "controller_runtime_reconcile_total")).toBeGreaterThan(0);
    } finally {
      await phases.stop();
    }
  });
});
