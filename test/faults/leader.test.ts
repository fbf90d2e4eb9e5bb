import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applySession,
  createNamespace,
  getSession,
  installCrd,
  isReady,
  kubectl,
  metricValue,
  type OperatorProcess,
  startOperator,
  until,
  waitFor,
} from "../integration/harness.ts";
import { testbed } from "../testbed/context.ts";
import { readState } from "../testbed/testbed.ts";
import { kubeconfigVia, phaseRecorder, StallProxy, sleep, standinSessions } from "./helpers.ts";

/**
 * Leader election under faults: a standby whose wall clock runs 20 s ahead, and a leader cut off from the
 * API server on one side. What must hold: at most one replica acts at a time (no write from a deposed
 * leader), and exactly one Livy session per LivySession.
 */
/** Each test starts two operators: starting one took over a minute at load average 20-28 on 2 cores. */
const TEST_TIMEOUT_MS = 10 * 60_000;

const leaderArgs = (ns: string, id: string) => [
  "--leader-elect",
  "true",
  "--leader-election-namespace",
  ns,
  "--namespaces",
  ns,
  "--identity",
  id,
];

const leads = async (op: OperatorProcess) => metricValue(await op.metrics(), "livy_operator_leader") === 1;

async function holder(ns: string): Promise<{ holder: string; transitions: number }> {
  const lease = JSON.parse(
    await kubectl(["get", "lease", "livy-operator-leader", "-n", ns, "-o", "json"]),
  ) as {
    spec: { holderIdentity?: string; leaseTransitions?: number };
  };
  return { holder: lease.spec.holderIdentity ?? "", transitions: lease.spec.leaseTransitions ?? 0 };
}

async function livySessionsOf(ns: string, name: string) {
  return (await standinSessions(`${ns}.${name}.`)).filter(
    (s) => !["dead", "killed", "error"].includes(s.state),
  );
}

async function cleanup(ns: string, ops: Array<OperatorProcess | null>) {
  await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=false"]).catch(() => "");
  for (const p of ops) if (p && p.proc.exitCode === null) await p.kill();
  await kubectl([
    "patch",
    "livysessions",
    "--all",
    "-n",
    ns,
    "--type=merge",
    "-p",
    '{"metadata":{"finalizers":null}}',
  ]).catch(() => "");
  await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
}

describe("a standby whose clock runs 20 s ahead", () => {
  let ns: string;
  let a: OperatorProcess | null = null;
  let b: OperatorProcess | null = null;
  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("skew");
  });
  afterAll(async () => cleanup(ns, [a, b]));

  it(
    "never takes a lease its leader keeps renewing, and takes it over once the leader dies",
    async () => {
      a = await startOperator({ name: "skew-a", args: leaderArgs(ns, "a") });
      await until("a leads", async () => leads(a as OperatorProcess), 20_000);
      b = await startOperator({
        name: "skew-b",
        args: leaderArgs(ns, "b"),
        env: {
          NODE_OPTIONS: `--import ${join(import.meta.dirname, "clock-skew.ts")}`,
          FAULTS_CLOCK_OFFSET_MS: "20000",
        },
      });
      await applySession(ns, "x", { kind: "pyspark", idleTimeout: "1h" });
      const x = await waitFor(ns, "x", isReady, "x Ready");
      const before = await holder(ns);
      // the skewed standby reads the leader's renewTime as 20 s old at every look: with expiry judged from
      // renewTime against its own clock it took the lease at once
      const watchedUntil = Date.now() + 30_000;
      while (Date.now() < watchedUntil) {
        expect(await leads(b), "the skewed standby leads").toBe(false);
        expect(await holder(ns)).toEqual(before);
        await sleep(1_000);
      }
      expect(metricValue(await b.metrics(), "controller_runtime_reconcile_total")).toBe(0);
      expect(before.holder).toBe("a");

      await a.kill();
      const killedAt = Date.now();
      await applySession(ns, "y", { kind: "pyspark", idleTimeout: "1h" });
      await until("b leads", async () => leads(b as OperatorProcess), 60_000);
      const tookOverMs = Date.now() - killedAt;
      // no sooner than the lease's 15 s since b last saw it renewed (by its own clock)
      expect(tookOverMs).toBeGreaterThan(10_000);
      await waitFor(ns, "y", isReady, "y Ready under b", 30_000);
      expect((await getSession(ns, "x"))?.status?.livySessionId).toBe(x.status?.livySessionId);
      for (const n of ["x", "y"])
        expect(await livySessionsOf(ns, n), `Livy sessions of ${n}`).toHaveLength(1);
      console.log(
        `[faults] clock skew +20 s: standby kept off for 30 s; took over ${tookOverMs} ms after the leader died`,
      );
    },
    TEST_TIMEOUT_MS,
  );
});

describe("a one-sided partition of the leader's API traffic", () => {
  let ns: string;
  let a: OperatorProcess | null = null;
  let b: OperatorProcess | null = null;
  let api: StallProxy;
  let livy: StallProxy;
  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("partition");
    const state = readState(testbed().stateDir);
    if (!state) throw new Error("no test bed state");
    api = new StallProxy(state.apiserverUrl);
    await api.listen();
    livy = new StallProxy(testbed().standinUrl);
    await livy.listen();
  });
  afterAll(async () => {
    api?.resume();
    livy?.resume();
    await cleanup(ns, [a, b]);
    await api?.close();
    await livy?.close();
  });

  it(
    "the deposed leader writes nothing, the standby takes over, one Livy session per LivySession",
    async () => {
      // a reaches the API server and Livy through proxies it cannot see past; b reaches both directly.
      // a judges a Ready session after 2 failed looks over 1 s, well within its 10 s term.
      a = await startOperator({
        name: "partition-a",
        args: [
          ...leaderArgs(ns, "a"),
          "--kubeconfig",
          kubeconfigVia(api.url, "partition-a"),
          "--server-url-template",
          livy.url,
          "--livy-request-timeout-ms",
          "1000",
          "--livy-failure-threshold",
          "2",
          "--livy-failure-window-ms",
          "1000",
        ],
      });
      await until("a leads", async () => leads(a as OperatorProcess), 20_000);
      b = await startOperator({ name: "partition-b", args: leaderArgs(ns, "b") });
      const names = ["p0", "p1", "p2"];
      await Promise.all(names.map((n) => applySession(ns, n, { kind: "pyspark", idleTimeout: "1h" })));
      const ids = new Map<string, number | undefined>();
      for (const n of names) ids.set(n, (await waitFor(ns, n, isReady, `${n} Ready`)).status?.livySessionId);
      const phases = await phaseRecorder(ns);
      try {
        // a's requests to the API server no longer arrive (its answers would); Livy stops answering it
        api.stall("up");
        livy.stall();
        const cutAt = Date.now();
        const upAtCut = api.bytesUp;
        // within its 10 s term, plus its shutdown (at most 15 s)
        await until("a gives up leading", async () => (a as OperatorProcess).proc.exitCode !== null, 40_000);
        const lostAfterMs = Date.now() - cutAt;
        await until("b leads", async () => leads(b as OperatorProcess), 60_000);
        const tookOverMs = Date.now() - cutAt;
        // a's requests still held by the proxy, were they ever delivered, would land now
        api.resume();
        livy.resume();
        await sleep(5_000);
        expect(a.proc.exitCode).toBe(1);
        expect(a.logs()).toMatch(/leader election: lost the lease/);
        expect(api.bytesUp - upAtCut, "bytes from the deposed leader that reached the API server").toBe(0);
        for (const n of names) {
          const ls = await getSession(ns, n);
          expect(ls && isReady(ls), `${n} Ready`).toBe(true);
          expect(ls?.status?.livySessionId, `${n} kept its Livy session`).toBe(ids.get(n));
          expect(phases.seen.get(n), `${n} never left Ready`).toEqual(["Ready"]);
          expect(await livySessionsOf(ns, n), `Livy sessions of ${n}`).toHaveLength(1);
        }
        // a's view of Livy (unreachable) made it decide Failed; none of that reached the API server
        expect(a.logs()).toMatch(/a look at the Livy server failed|LivyUnreachable|pass cancelled/);
        console.log(
          `[faults] one-sided partition: leader stopped ${lostAfterMs} ms after the cut, standby led after ${tookOverMs} ms; 0 bytes from the deposed leader reached the API server`,
        );
      } finally {
        await phases.stop();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
