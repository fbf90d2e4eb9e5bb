import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LivySession } from "../../src/api/index.ts";
import { CORE, resourcePath } from "../../src/kube/client.ts";
import { LivyClient } from "../../src/livy/client.ts";
import { LivyError } from "../../src/livy/errors.ts";
import {
  applySession,
  condition,
  createNamespace,
  getSession,
  installCrd,
  isReady,
  kube,
  kubectl,
  type OperatorProcess,
  phaseIs,
  startOperator,
  until,
  waitFor,
} from "../integration/harness.ts";
import { type Standin, startStandin } from "../standin/server.ts";
import { owned, phaseRecorder, StallProxy, sessions, sleep, standinSessions } from "./helpers.ts";

/**
 * The Livy server behind a session lost (refusing connections, or hanging) or failing once (a poll
 * delayed past its timeout, a failed DNS lookup), and servers that never start (a pod that never
 * schedules, an image that cannot be pulled). The operator here talks to a stand-in of its own, through a
 * proxy it reaches by a name under .faults.test (resolved by test/faults/dns.ts), so making it
 * unreachable disturbs nothing else on the test bed.
 */
const POLL_MS = 500; // the harness runs the operator with --session-poll-interval-ms 500
/** A Ready session's failure policy acts after 3 failed looks spanning 3 s (defaults: 3 over 15 s). */
const FAILURE_THRESHOLD = 3;
const FAILURE_WINDOW_MS = 3_000;
/** How long a lost server stays lost: past the failure window with room for a loaded machine. */
const LOST_MS = 10_000;
/**
 * What "within" allows on top of a figure, on a machine loaded far past its 2 cores (load average 20-28 with
 * a CPU hog on both cores), where a timer or a pass can be seconds late.
 */
const SLACK_MS = 8_000;

describe("Livy server lost, server never starting", () => {
  let ns: string;
  let op: OperatorProcess;
  let standin: Standin;
  let proxy: StallProxy;
  let dnsControl: string;
  const control = async (path: string, body: unknown) => {
    const res = await fetch(`${standin.url}/_standin/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(res.ok, `POST /_standin/${path}`).toBe(true);
  };
  const reason = (ls: LivySession | null) => condition(ls, "Ready")?.reason;
  const livyOf = async (name: string) => standinSessions(`${ns}.${name}.`, standin.url);

  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("livylost");
    standin = await startStandin({ host: "127.0.0.1", port: 0, sessionStartupMs: 300 });
    proxy = new StallProxy(standin.url);
    await proxy.listen();
    dnsControl = join(mkdtempSync(join(tmpdir(), "faults-dns-")), "fail-next");
    writeFileSync(dnsControl, "0");
    op = await startOperator({
      name: "livy-lost",
      args: [
        "--namespaces",
        ns,
        "--server-url-template",
        `http://livy-lost.faults.test:${proxy.port}`,
        "--livy-request-timeout-ms",
        "2000",
        "--livy-failure-threshold",
        String(FAILURE_THRESHOLD),
        "--livy-failure-window-ms",
        String(FAILURE_WINDOW_MS),
      ],
      env: {
        NODE_OPTIONS: `--import ${join(import.meta.dirname, "dns.ts")}`,
        FAULTS_DNS_CONTROL: dnsControl,
      },
    });
  });

  afterAll(async () => {
    standin?.control.reset();
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
      () => "",
    );
    await op?.stop();
    proxy?.resume();
    await proxy?.close();
    await standin?.close();
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("one poll delayed past the request timeout is not a failure: Ready throughout, the statement in flight completes", async () => {
    await applySession(ns, "slow", { kind: "pyspark", failurePolicy: "FailFast", idleTimeout: "1h" });
    const ready = await waitFor(ns, "slow", isReady, "Ready");
    const phases = await phaseRecorder(ns);
    const client = new LivyClient({ baseUrl: standin.url });
    try {
      const handle = await client.session(ready.status?.livySessionId ?? -1).submit("time.sleep(4)");
      // the operator's polls get no answer for longer than its 2 s request timeout, then answers again
      proxy.stall();
      await sleep(2_600);
      proxy.resume();
      expect((await handle.result).kind, "the statement in flight completed").toBe("text");
      await sleep(3 * POLL_MS);
      const after = await getSession(ns, "slow");
      expect(after && isReady(after)).toBe(true);
      expect(after?.status?.livySessionId).toBe(ready.status?.livySessionId);
      expect(phases.seen.get("slow"), "never left Ready").toEqual(["Ready"]);
      // gone before the next test makes the shared stand-in unreachable
      await kubectl(["delete", "livysession", "slow", "-n", ns, "--wait=true", "--timeout=30s"]);
      expect(await livyOf("slow")).toEqual([]);
      expect(op.logs()).toMatch(/a look at the Livy server failed \(1 in a row\).*timed out after 2000 ms/);
    } finally {
      await phases.stop();
      await client.close();
    }
  });

  it("one failed DNS lookup is not a failure: Ready throughout, the statement in flight completes", async () => {
    await applySession(ns, "dns", { kind: "pyspark", failurePolicy: "FailFast", idleTimeout: "1h" });
    const ready = await waitFor(ns, "dns", isReady, "Ready");
    const phases = await phaseRecorder(ns);
    const client = new LivyClient({ baseUrl: standin.url });
    try {
      const handle = await client.session(ready.status?.livySessionId ?? -1).submit("time.sleep(3)");
      // the operator keeps its connections between polls: close them, and fail its next lookup
      writeFileSync(dnsControl, "1");
      proxy.resetConnections();
      await until("the failed lookup", async () => readFileSync(dnsControl, "utf8").trim() === "0", 10_000);
      expect((await handle.result).kind, "the statement in flight completed").toBe("text");
      await sleep(3 * POLL_MS);
      const after = await getSession(ns, "dns");
      expect(after && isReady(after)).toBe(true);
      expect(after?.status?.livySessionId).toBe(ready.status?.livySessionId);
      expect(phases.seen.get("dns"), "never left Ready").toEqual(["Ready"]);
      // gone before the next test makes the shared stand-in unreachable
      await kubectl(["delete", "livysession", "dns", "-n", ns, "--wait=true", "--timeout=30s"]);
      expect(await livyOf("dns")).toEqual([]);
      expect(op.logs()).toMatch(/a look at the Livy server failed \(1 in a row\).*EAI_AGAIN/);
    } finally {
      await phases.stop();
      await client.close();
    }
  });

  it("FailFast: a Livy server that refuses connections fails a Ready session with LivyUnreachable after the failure window; in-flight statements are rejected at once", async () => {
    await applySession(ns, "refused", { kind: "pyspark", failurePolicy: "FailFast", idleTimeout: "1h" });
    const ready = await waitFor(ns, "refused", (ls) => ls.status?.phase === "Ready", "Ready");
    const client = new LivyClient({ baseUrl: standin.url });
    try {
      const handle = await client.session(ready.status?.livySessionId ?? -1).submit("sleep 30");
      const settled = handle.result.then(
        () => null,
        (err: unknown) => err,
      );
      const lostAt = Date.now();
      await control("unreachable", { ms: LOST_MS, mode: "refuse" });
      const failed = await waitFor(ns, "refused", phaseIs("Failed"), "Failed", LOST_MS);
      const failedAfter = Date.now() - lostAt;
      const err = await settled;
      const rejectedAfter = Date.now() - lostAt;
      expect(reason(failed)).toBe("LivyUnreachable");
      expect(failed.status?.message).toMatch(
        /LivyUnreachable: the Livy server stopped answering: \d+ failed looks over \ds/,
      );
      // failed looks spanning the window, the first at the next poll (every 500 ms here)
      expect(failedAfter).toBeGreaterThanOrEqual(FAILURE_WINDOW_MS);
      expect(failedAfter).toBeLessThan(POLL_MS + FAILURE_WINDOW_MS + SLACK_MS);
      expect(err, "the in-flight statement's result").toBeInstanceOf(LivyError);
      expect(rejectedAfter).toBeLessThan(SLACK_MS);
      await until("server removed", async () => (await owned(ns)).deployments.length === 0);
      console.log(
        `[faults] Livy refused: Failed ${failedAfter} ms after the fault, in-flight statement rejected (${(err as LivyError).code})`,
      );
    } finally {
      await client.close();
    }
    // back once Livy answers again and a new demand comes
    await until(
      "Livy answering again",
      async () => (await fetch(`${standin.url}/version`).catch(() => null))?.ok === true,
      LOST_MS + SLACK_MS,
    );
    await kubectl([
      "annotate",
      "livysession",
      "refused",
      "-n",
      ns,
      `livy.dev/demanded-at=${new Date().toISOString()}`,
    ]);
    await waitFor(ns, "refused", (ls) => ls.status?.phase === "Ready", "Ready after a new demand", 20_000);
  });

  it("FailFast: a Livy server that hangs fails the session with LivyUnreachable after the request timeout", async () => {
    await applySession(ns, "hung", { kind: "pyspark", failurePolicy: "FailFast", idleTimeout: "1h" });
    await waitFor(ns, "hung", (ls) => ls.status?.phase === "Ready", "Ready");
    await control("config", { responseDelayMs: 60_000 });
    const lostAt = Date.now();
    try {
      const failed = await waitFor(ns, "hung", phaseIs("Failed"), "Failed", 30_000);
      const failedAfter = Date.now() - lostAt;
      expect(reason(failed)).toBe("LivyUnreachable");
      expect(failed.status?.message).toMatch(/timed out after 2000 ms/);
      // three looks timed out (2 s each, a poll apart), then failed
      expect(failedAfter).toBeLessThan(FAILURE_THRESHOLD * (POLL_MS + 2_000) + SLACK_MS);
      console.log(`[faults] Livy hung: Failed ${failedAfter} ms after the fault (request timeout 2000 ms)`);
    } finally {
      await control("config", { responseDelayMs: 0 });
    }
  });

  it("Recover: the Livy server lost is replaced, with a new Livy session, and the restart counted", async () => {
    await applySession(ns, "rec", { kind: "pyspark", failurePolicy: "Recover", idleTimeout: "1h" });
    const first = await waitFor(ns, "rec", (ls) => ls.status?.phase === "Ready", "Ready");
    await control("unreachable", { ms: LOST_MS, mode: "reset" });
    const again = await waitFor(
      ns,
      "rec",
      (ls) => ls.status?.phase === "Ready" && (ls.status?.restarts ?? 0) >= 1,
      "Ready again after a restart",
      30_000,
    );
    expect(again.status?.restarts).toBe(1);
    expect(again.status?.livySessionId).not.toBe(first.status?.livySessionId);
    const live = (await standinSessions(`${ns}.rec.`, standin.url)).filter(
      (s) => s.id === again.status?.livySessionId,
    );
    expect(live).toHaveLength(1);
    expect((await owned(ns)).deployments).toContain("livy-rec");
  });

  it("FailFast: a pod that never schedules ends Failed with Unschedulable", async () => {
    const started = Date.now();
    await applySession(ns, "nowhere", {
      kind: "pyspark",
      failurePolicy: "FailFast",
      server: { nodeSelector: { "livy.dev/faults": "no-such-node" } },
    });
    const failed = await waitFor(ns, "nowhere", phaseIs("Failed"), "Failed", 30_000);
    expect(reason(failed)).toBe("Unschedulable");
    expect(failed.status?.message).toMatch(/Unschedulable: .*node/);
    await until("server removed", async () => !(await owned(ns)).deployments.includes("livy-nowhere"));
    console.log(`[faults] unschedulable (FailFast): Failed ${Date.now() - started} ms after creation`);
  });

  it("Recover: a pod that never schedules waits until startupTimeout, restarts, and ends with RestartLimitReached", async () => {
    const started = Date.now();
    await applySession(ns, "nowhere-rec", {
      kind: "pyspark",
      failurePolicy: "Recover",
      maxRestarts: 1,
      startupTimeout: "4s",
      server: { nodeSelector: { "livy.dev/faults": "no-such-node" } },
    });
    const waiting = await waitFor(
      ns,
      "nowhere-rec",
      (ls) => condition(ls, "ServerReady")?.reason === "Unschedulable",
      "waiting, Unschedulable",
      15_000,
    );
    expect(waiting.status?.phase).toBe("Starting");
    // it waits for a node instead of deleting the pending pod at once
    await sleep(2_000);
    const still = await getSession(ns, "nowhere-rec");
    expect(still?.status?.restarts ?? 0).toBe(0);
    expect((await owned(ns)).deployments).toContain("livy-nowhere-rec");
    const failed = await waitFor(ns, "nowhere-rec", phaseIs("Failed"), "Failed", 30_000);
    const elapsed = Date.now() - started;
    expect(reason(failed)).toBe("RestartLimitReached");
    expect(failed.status?.restarts).toBe(1);
    expect(failed.status?.message).toMatch(/StartupTimeout: not Ready within 4s: Unschedulable/);
    // two attempts of 4 s and a 1 s backoff
    expect(elapsed).toBeGreaterThanOrEqual(8_000);
    await until("server removed", async () => !(await owned(ns)).deployments.includes("livy-nowhere-rec"));
    console.log(
      `[faults] unschedulable (Recover, startupTimeout 4s, maxRestarts 1): Failed ${elapsed} ms after creation`,
    );
  });

  it("FailFast: an image that cannot be pulled ends Failed with ImagePullFailed", async () => {
    // kwok pulls nothing: the kubelet's verdict is written into the pod's status, which kwok leaves alone
    // once the pod runs; the Livy session is kept starting so the operator is still waiting for it
    await control("config", { sessionStartupMs: 60_000 });
    try {
      await applySession(ns, "pull", { kind: "pyspark", failurePolicy: "FailFast" });
      const k = await kube();
      const pod = await until(
        "the Livy pod running",
        async () => {
          const pods = await k.get<{
            items: Array<{ metadata: { name: string }; status?: { phase?: string } }>;
          }>(resourcePath(CORE.pods, ns), { query: { labelSelector: "livy.dev/session=pull" } });
          return pods.items.find((p) => p.status?.phase === "Running");
        },
        20_000,
      );
      const patchedAt = Date.now();
      await k.mergePatch(resourcePath(CORE.pods, ns, pod.metadata.name, "status"), {
        status: {
          conditions: [
            { type: "Ready", status: "False", reason: "ContainersNotReady" },
            { type: "ContainersReady", status: "False", reason: "ContainersNotReady" },
          ],
          containerStatuses: [
            {
              name: "livy",
              image: "ghcr.io/livy-operator/livy-server:missing",
              imageID: "",
              ready: false,
              restartCount: 0,
              started: false,
              state: {
                waiting: {
                  reason: "ImagePullBackOff",
                  message: 'Back-off pulling image "ghcr.io/livy-operator/livy-server:missing"',
                },
              },
            },
          ],
        },
      });
      const failed = await waitFor(ns, "pull", phaseIs("Failed"), "Failed", 15_000);
      expect(reason(failed)).toBe("ImagePullFailed");
      expect(failed.status?.message).toMatch(/ImagePullBackOff: Back-off pulling image/);
      await until("server removed", async () => !(await owned(ns)).deployments.includes("livy-pull"));
      console.log(
        `[faults] image pull failure: Failed ${Date.now() - patchedAt} ms after the pod reported it`,
      );
    } finally {
      await control("config", { sessionStartupMs: 300 });
    }
  });

  it("leaves nothing behind once deleted", async () => {
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]);
    expect(await sessions(ns)).toEqual([]);
    const objs = await owned(ns);
    expect([...objs.deployments, ...objs.services, ...objs.configmaps]).toEqual([]);
    const live = (await standinSessions(`${ns}.`, standin.url)).filter(
      (s) => !["dead", "killed"].includes(s.state),
    );
    // the stand-in is one server for every session: sessions a lost server held (unreachable when the
    // operator tried to delete them) stay on it; a real server's sessions end with its pod
    const lostWithServer = ["refused", "hung", "rec"].map((n) => `${ns}.${n}.`);
    expect(live.filter((s) => !lostWithServer.some((p) => s.name?.startsWith(p)))).toEqual([]);
  });
});
