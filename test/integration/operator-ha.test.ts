import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CORE, resourcePath } from "../../src/kube/client.ts";
import { testbed } from "../testbed/context.ts";
import {
  applySession,
  createNamespace,
  getSession,
  installCrd,
  isReady,
  kube,
  kubectl,
  metricValue,
  type OperatorProcess,
  startOperator,
  until,
} from "./harness.ts";

/** Each test starts two operators: starting one took over a minute at load average 20-28 on 2 cores. */
const TEST_TIMEOUT_MS = 10 * 60_000;

interface StandinSession {
  id: number;
  name: string | null;
  state: string;
}

async function standinSessions(prefix: string): Promise<StandinSession[]> {
  const res = await fetch(`${testbed().standinUrl}/sessions?size=10000`);
  const body = (await res.json()) as { sessions: StandinSession[] };
  return body.sessions.filter((s) => s.name?.startsWith(prefix));
}

async function ownedCount(ns: string): Promise<Record<string, number>> {
  const k = await kube();
  const q = { query: { labelSelector: "app.kubernetes.io/managed-by=livy-operator" } };
  const [d, s, c] = await Promise.all([
    k.get<{ items: unknown[] }>(resourcePath(CORE.deployments, ns), q),
    k.get<{ items: unknown[] }>(resourcePath(CORE.services, ns), q),
    k.get<{ items: unknown[] }>(resourcePath(CORE.configMaps, ns), q),
  ]);
  return { deployments: d.items.length, services: s.items.length, configmaps: c.items.length };
}

describe("operator killed and restarted", () => {
  let ns: string;
  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("crash");
  });
  afterAll(async () => {
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it(
    "SIGKILL mid-creation: the restarted operator converges with no duplicate Livy session or object, and deletes leave nothing",
    async () => {
      const names = Array.from({ length: 8 }, (_, i) => `s${i}`);
      let op = await startOperator({ name: "crash-1" });
      await Promise.all(names.map((n) => applySession(ns, n, { kind: "pyspark" })));
      // kill while the sessions are being created (Deployments applied, Livy sessions opening)
      await until(
        "some Livy sessions opening",
        async () => (await standinSessions(`${ns}.`)).length >= 2,
        20_000,
      );
      await op.kill();
      op = await startOperator({ name: "crash-2" });
      try {
        await until(
          "all Ready",
          async () =>
            (await Promise.all(names.map((n) => getSession(ns, n)))).every((ls) => ls && isReady(ls)),
          60_000,
        );
        for (const n of names) {
          const live = (await standinSessions(`${ns}.${n}.`)).filter(
            (s) => !["dead", "killed", "error"].includes(s.state),
          );
          expect(live.length, `live Livy sessions of ${n}`).toBe(1);
          expect(live[0]?.id).toBe((await getSession(ns, n))?.status?.livySessionId);
        }
        expect(await ownedCount(ns)).toEqual({ deployments: 8, services: 8, configmaps: 8 });
        await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]);
        await until(
          "owned objects collected",
          async () => Object.values(await ownedCount(ns)).every((v) => v === 0),
          60_000,
        );
        expect(await standinSessions(`${ns}.`)).toEqual([]);
        expect(
          metricValue(await op.metrics(), "controller_runtime_reconcile_total", { result: "error" }),
        ).toBe(0);
      } finally {
        expect(await op.stop()).toBe(0);
      }
    },
    TEST_TIMEOUT_MS,
  );
});

describe("leader election", () => {
  let ns: string;
  let a: OperatorProcess | null = null;
  let b: OperatorProcess | null = null;
  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("leader");
  });
  afterAll(async () => {
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=false"]).catch(() => "");
    for (const p of [a, b]) if (p && p.proc.exitCode === null) await p.kill();
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
  });

  it(
    "two replicas never both act; the standby takes over when the leader dies",
    async () => {
      const args = ["--leader-elect", "true", "--leader-election-namespace", ns, "--namespaces", ns];
      a = await startOperator({ name: "leader-a", args: [...args, "--identity", "a"] });
      b = await startOperator({ name: "leader-b", args: [...args, "--identity", "b"] });
      const leaderOf = async () => {
        const [ma, mb] = await Promise.all([a?.metrics() ?? "", b?.metrics() ?? ""]);
        return {
          a: metricValue(ma, "livy_operator_leader"),
          b: metricValue(mb, "livy_operator_leader"),
          ma,
          mb,
        };
      };
      await until("one leader", async () => {
        const l = await leaderOf();
        return l.a + l.b === 1;
      });
      await applySession(ns, "x", { kind: "pyspark" });
      await until("x Ready", async () => {
        const ls = await getSession(ns, "x");
        return ls && isReady(ls);
      });
      const l = await leaderOf();
      expect(l.a + l.b).toBe(1);
      const [leader, standby, standbyMetrics] = l.a === 1 ? [a, b, l.mb] : [b, a, l.ma];
      expect(metricValue(standbyMetrics, "controller_runtime_reconcile_total")).toBe(0);
      const lease = JSON.parse(
        await kubectl(["get", "lease", "livy-operator-leader", "-n", ns, "-o", "json"]),
      ) as {
        spec: { holderIdentity: string };
      };
      expect(lease.spec.holderIdentity).toBe(l.a === 1 ? "a" : "b");

      await leader?.kill();
      await applySession(ns, "y", { kind: "pyspark" });
      // the lease (15 s) must expire before the standby may act
      await until(
        "standby leads and reconciles y",
        async () => {
          const ls = await getSession(ns, "y");
          return ls && isReady(ls);
        },
        45_000,
      );
      const m = await standby?.metrics();
      expect(metricValue(m ?? "", "livy_operator_leader")).toBe(1);
      expect(metricValue(m ?? "", "controller_runtime_reconcile_total")).toBeGreaterThan(0);
      await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]);
      expect(await standby?.stop()).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );
});
