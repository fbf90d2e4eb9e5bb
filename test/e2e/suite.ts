/**
 * The end-to-end body: the product as a user installs and uses it, on a real cluster with real containers.
 * One body for every cluster (suite.ts); the providers (cluster.ts) differ only in provisioning and image
 * loading. real-node.test.ts runs it on the test bed's real node (the default in `make test`), kind.test.ts
 * on kind (TEST_CLUSTER=kind).
 *
 * A real Livy session start is a JVM and a SparkContext in the Livy pod: tens of seconds on a quiet machine,
 * minutes under load. So the steps share starts where the checks stay independent: four starts in all (the
 * example's cold start, its wake, the Recover example's start with the operator killed in the middle, and
 * its recovery after its Livy pod is killed).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { failureOf, type LivySession, phaseOf, readyCondition } from "../../src/api/index.ts";
import { CORE, resourcePath } from "../../src/kube/client.ts";
import { connectKube, connectLivySession } from "../../src/livy/kube.ts";
import { REPO_ROOT } from "../testbed/paths.ts";
import { until as poll } from "../testbed/process.ts";
import { type Cluster, type Pod, Product, RELEASE_NS } from "./product.ts";

const log = (msg: string) => process.stderr.write(`[e2e ${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
/** testbed's until, polled every second: each probe here is a kubectl process or a request through the cluster. */
const until = <T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs: number) =>
  poll(what, fn, timeoutMs, 1_000);
const S = 1_000;
const MIN = 60 * S;

const example = (file: string) => {
  const path = join(REPO_ROOT, "examples", file);
  const m = parse(readFileSync(path, "utf8")) as {
    metadata: { name: string };
    spec: { startupTimeout?: string };
  };
  return { path, name: m.metadata.name, startupTimeout: m.spec.startupTimeout };
};
const MINIMAL = example("pyspark-minimal.yaml");
const RECOVER = example("recover.yaml");
/** The example's namespace: `kubectl apply -f` without -n puts it in the kubeconfig's, `default`. */
const NS = "default";
const RECOVER_NS = "e2e-recover";
const CLIENT_NS = "e2e-notebooks";
/**
 * The machine's allowance: a real Livy session's start (a Livy JVM, spark-submit, a SparkContext, a Python
 * REPL in one pod) took 3.7 min at load average 20 on 2 cores and over 5 min at 30-40, past the example's
 * default startupTimeout (5m: the wake of an earlier run failed StartupTimeout). The suite gives the minimal
 * example this startupTimeout right after applying it (a spec change the operator takes as it goes), and
 * recover.yaml too (its own 10m ran out at load 62: StartupTimeout, a restart, and the leader-kill step
 * timed out). The Ready waits are the startupTimeout (past it the operator fails or
 * restarts the session) and a minute more.
 */
const STARTUP_TIMEOUT = "15m";
// The steps that wait for Ready and then run a statement get READY_MS.minimal, the statement's 5 minutes
// (a cold JVM's first Spark job took 232 s at load 45) and a minute of slack: 22 minutes.
const READY_MS = { minimal: 16 * MIN, recover: 16 * MIN };

export function e2eSuite(title: string, provision: () => Promise<Cluster>): void {
  describe(title, () => {
    let cluster: Cluster | null = null;
    let p: Product;
    /** What the namespace held before the example was applied: delete must leave exactly this. */
    let baseline: string[] = [];
    const state: { ready?: LivySession; woken?: LivySession; recoverReady?: LivySession } = {};

    const need = <T>(v: T | undefined, what: string): T => {
      if (v === undefined) throw new Error(`needs ${what} (an earlier step failed)`);
      return v;
    };
    /** livyctl run in a notebook pod in the cluster: the statement's output. */
    const runInCluster = async (code: string) => {
      const r = await p.livyctlInCluster(
        CLIENT_NS,
        NS,
        ["run", "--livysession", `${NS}/${MINIMAL.name}`, "--wait", "0", code],
        5 * MIN,
      );
      expect(r, r.output).toMatchObject({ code: 0 });
      return r.output.trim();
    };

    /** livyctl run from the host (the README's command): the statement's output. */
    const runFromHost = async (code: string) => {
      const r = await p.livyctl(["run", "--livysession", `${NS}/${MINIMAL.name}`, "--wait", "0", code], {
        timeoutMs: 5 * MIN,
      });
      expect(r, r.stderr).toMatchObject({ code: 0 });
      return r.stdout.trim();
    };

    /** Waits until none of the operator's objects is left in `ns`; a timeout names what still was. */
    const noneLeft = async (ns: string, what: string, timeoutMs: number) => {
      let left: string[] = [];
      await until(
        what,
        async () => {
          left = await p.ownedLeft(ns);
          return left.length === 0;
        },
        timeoutMs,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; still there: ${left.join(", ")}`);
      });
    };

    beforeAll(async () => {
      cluster = await provision();
      p = new Product(cluster, log);
      log(`cluster: ${cluster.description}; images ${cluster.images.operator}, ${cluster.images.livy}`);
    }, 3_600_000);

    afterAll(async () => {
      if (!cluster) return;
      // LivySessions go while the operator runs (their finalizers need it), then the release
      await p
        .kubectl(["delete", "livysessions", "--all", "-n", NS, "--wait", "--timeout=120s"])
        .catch((e) => log(String(e)));
      await p
        .kubectl([
          "delete",
          "namespace",
          RECOVER_NS,
          CLIENT_NS,
          "--ignore-not-found",
          "--wait",
          "--timeout=180s",
        ])
        .catch((e) => log(String(e)));
      await p
        .kubectl(["delete", "rolebinding", `notebook-${CLIENT_NS}`, "-n", NS, "--ignore-not-found"])
        .catch(() => "");
      await p.helmUninstall();
      await p
        .kubectl(["delete", "namespace", RELEASE_NS, "--ignore-not-found", "--wait", "--timeout=180s"])
        .catch(() => "");
      await p.close();
      await cluster.dispose();
    }, 900_000);

    it(
      "helm install: two operator replicas (one leader) and the gateway run in pods with the chart's RBAC and in-cluster configuration",
      async () => {
        const started = Date.now();
        await p.helmInstall({ replicas: 2 });
        log(`helm install --wait: ${((Date.now() - started) / 1000).toFixed(1)} s`);
        const operators = await p.pods(RELEASE_NS, "app.kubernetes.io/name=livy-operator");
        expect(operators).toHaveLength(2);
        for (const pod of operators) {
          expect(pod.status?.containerStatuses?.[0]?.ready, pod.metadata.name).toBe(true);
          expect(pod.spec.containers[0]?.image).toBe(cluster?.images.operator);
          expect((pod.spec as { serviceAccountName?: string }).serviceAccountName).toBe("livy-operator");
        }
        // leader election: exactly one replica holds the Lease, and it is one of these pods
        const holder = await until("a leader", () => p.leaseHolder(), MIN);
        expect(operators.map((o) => o.metadata.name)).toContain(holder);
        // in-cluster configuration: the operator talks to the API server through the kubernetes Service
        const svc = await (await p.kube()).get<{ spec: { clusterIP: string } }>(
          resourcePath(CORE.services, "default", "kubernetes"),
        );
        const logs = await p.kubectl(["logs", "-n", RELEASE_NS, holder]);
        expect(logs).toContain(`"server":"https://${svc.spec.clusterIP}:443"`);
        expect(logs).toContain("leader election: became leader");
        const gateways = await p.pods(RELEASE_NS, "app.kubernetes.io/name=livy-gateway");
        expect(gateways.filter((g) => g.status?.containerStatuses?.[0]?.ready)).toHaveLength(2);
      },
      20 * MIN,
    );

    it(
      `kubectl apply -f examples/${MINIMAL.name}.yaml: real Livy on Spark in a pod, the LivySession Ready`,
      async () => {
        baseline = await p.everythingIn(NS);
        await p.kubectl(["apply", "-f", MINIMAL.path]);
        await p.kubectl([
          "patch",
          "livysession",
          MINIMAL.name,
          "--type",
          "merge",
          "-p",
          JSON.stringify({ spec: { startupTimeout: STARTUP_TIMEOUT } }),
        ]);
        const ready = await p.waitReady(NS, MINIMAL.name, READY_MS.minimal);
        state.ready = ready;
        expect(ready.status?.sessionURL).toBe(
          `http://livy-${MINIMAL.name}.${NS}.svc:8998/sessions/${ready.status?.livySessionId}`,
        );
        const [pod] = await p.livyPods(NS, MINIMAL.name);
        expect(pod?.spec.containers[0]?.image).toBe(cluster?.images.livy);
        expect(pod?.status?.phase).toBe("Running");
        // the README's headline row
        const row = (await p.kubectl(["get", "lvs", MINIMAL.name, "--no-headers"])).trim().split(/\s+/);
        expect(row.slice(0, 6)).toEqual([
          MINIMAL.name,
          "Ready",
          "True",
          "Ready",
          "idle",
          ready.status?.sessionURL,
        ]);
        // one Livy session on the server: this attempt's
        const sessions = await p.livySessionsOnServer(NS, MINIMAL.name);
        expect(sessions.map((s) => s.id)).toEqual([ready.status?.livySessionId]);
      },
      22 * MIN,
    );

    it(
      "from the host, outside the cluster: livyctl run --livysession default/pyspark-minimal 'spark.range(1000).count()' prints 1000 (the README's headline command)",
      async () => {
        need(state.ready, "a Ready LivySession");
        // through the API server to the gateway with the kubeconfig (docs/client.md: outside the cluster)
        expect(await runFromHost("spark.range(1000).count()")).toBe("1000");
      },
      10 * MIN,
    );

    it(
      "from the host: the TypeScript client (connectLivySession through the API server to the gateway) runs spark.range(1000).count()",
      async () => {
        const ready = need(state.ready, "a Ready LivySession");
        const conn = await connectKube({ kubeconfig: cluster?.kubeconfig });
        try {
          const { client, session, endpoint } = await connectLivySession(conn.kube, NS, MINIMAL.name, {
            timeoutMs: MIN,
          });
          try {
            expect(endpoint.sessionId).toBe(ready.status?.livySessionId);
            // the chart's gateway, served by the API server: the Livy server itself admits only the gateway
            expect(client.baseUrl.pathname).toBe(
              `/apis/livy.dev/gateway/namespaces/${NS}/livysessions/${MINIMAL.name}/proxy`,
            );
            expect(session.id).toBe(0);
            const result = await session.run("spark.range(1000).count()", { timeoutMs: 5 * MIN });
            expect(result.text).toBe("1000");
          } finally {
            await client.close();
          }
        } finally {
          await conn.close();
        }
      },
      10 * MIN,
    );

    it(
      "in the cluster, as a notebook pod: livyctl (in-cluster configuration, through the API server to the gateway) prints 1000",
      async () => {
        need(state.ready, "a Ready LivySession");
        await p.namespace(CLIENT_NS);
        expect(await runInCluster("spark.range(1000).count()")).toBe("1000");
      },
      10 * MIN,
    );

    it(
      "idle teardown: no statements for spec.idleTimeout removes the Livy pod and its Deployment; the LivySession stays Idle",
      async () => {
        need(state.ready, "a Ready LivySession");
        // the example's 15m shortened, as a user may edit it: a change that needs no restart
        await p.kubectl([
          "patch",
          "livysession",
          MINIMAL.name,
          "--type",
          "merge",
          "-p",
          '{"spec":{"idleTimeout":"30s"}}',
        ]);
        const idle = await p.waitFor(NS, MINIMAL.name, "Idle", (ls) => phaseOf(ls) === "Idle", 3 * MIN);
        expect(readyCondition(idle)?.reason).toBe("IdleTimeout");
        expect(idle.status?.sessionURL).toBeUndefined();
        // what runs goes; the Service, ConfigMap and NetworkPolicy stay for the wake (decide.ts removeServer)
        let left: string[] = [];
        await until(
          "the Livy server's pod, ReplicaSet and Deployment removed",
          async () => {
            left = (await p.ownedLeft(NS)).filter((o) =>
              /^(pod|replicaset\.apps|deployment\.apps)\//.test(o),
            );
            return left.length === 0;
          },
          2 * MIN,
        ).catch((err: Error) => {
          throw new Error(`${err.message}; still there: ${left.join(", ")}`);
        });
        expect(await p.ownedLeft(NS)).toContain(`service/livy-${MINIMAL.name}`);
        expect(await p.livyPods(NS, MINIMAL.name)).toEqual([]);
      },
      6 * MIN,
    );

    it(
      "wake: livyctl wake brings it back, a new Livy pod and session that run statements",
      async () => {
        const first = need(state.ready, "a Ready LivySession");
        const r = await p.livyctl(["wake", `${NS}/${MINIMAL.name}`, "--timeout", "0"]);
        expect(r, r.stderr).toMatchObject({ code: 0 });
        // back to the example's idle timeout (the CRD's default) while it starts
        await p.kubectl([
          "patch",
          "livysession",
          MINIMAL.name,
          "--type",
          "merge",
          "-p",
          '{"spec":{"idleTimeout":null}}',
        ]);
        const woken = await p.waitReady(NS, MINIMAL.name, READY_MS.minimal);
        state.woken = woken;
        expect(woken.spec.idleTimeout).toBe("15m");
        expect(Date.parse(woken.status?.readyTime ?? "")).toBeGreaterThan(
          Date.parse(first.status?.readyTime ?? ""),
        );
        const pods = await p.livyPods(NS, MINIMAL.name);
        expect(pods).toHaveLength(1);
        expect(await runFromHost("spark.range(1000).count()")).toBe("1000");
      },
      22 * MIN,
    );

    it(
      "FailFast: the Livy pod killed under the Ready session: Failed with a reason within 5 s, its server removed",
      async () => {
        need(state.woken, "the woken LivySession");
        const [pod] = await p.livyPods(NS, MINIMAL.name);
        const k = await p.kube();
        const podPath = resourcePath(CORE.pods, NS, need(pod, "its Livy pod").metadata.name);
        const t0 = Date.now();
        await k.delete(podPath);
        // the API server's clock, both ends: the pod's deletionTimestamp (it stays while terminating) and
        // the Ready condition's transition. The test's own round trips (the DELETE, the polls) take seconds
        // of their own at load 50-70 on 2 cores (6.9 s seen on kind where the operator took 1 s).
        // (deletionTimestamp is when the grace period ends: the request was its grace period earlier)
        const deletedAt = await k
          .get<{ metadata: { deletionTimestamp?: string; deletionGracePeriodSeconds?: number } }>(podPath)
          .then(
            ({ metadata: m }) =>
              Date.parse(m.deletionTimestamp ?? "") - (m.deletionGracePeriodSeconds ?? Number.NaN) * S,
          )
          .catch(() => Number.NaN);
        const failed = await p.waitFor(NS, MINIMAL.name, "Failed", (ls) => phaseOf(ls) === "Failed", 60 * S);
        const seenMs = Date.now() - t0;
        const failedAt = Date.parse(readyCondition(failed)?.lastTransitionTime ?? "");
        // whole seconds (RFC 3339 without fractions); the test's view when the pod was gone before it looked
        const tookMs =
          Number.isFinite(deletedAt) && Number.isFinite(failedAt) ? failedAt - deletedAt : seenMs;
        log(
          `Livy pod deleted → Failed in ${tookMs} ms by the API server's timestamps (${seenMs} ms as this test saw it): ${failed.status?.message}`,
        );
        expect(failureOf(failed)).toMatchObject({ reason: "SessionLost" });
        expect(failed.status?.message).toContain(pod?.metadata.name);
        expect(tookMs).toBeLessThanOrEqual(5 * S);
        await noneLeft(NS, "the failed server removed", 2 * MIN);
      },
      5 * MIN,
    );

    it(
      "the operator's leader killed mid-create (examples/recover.yaml): the standby takes over and converges on one Livy session",
      async () => {
        await p.namespace(RECOVER_NS);
        const killedLeader = need((await p.leaseHolder()) ?? undefined, "a leader");
        await p.kubectl(["apply", "-n", RECOVER_NS, "-f", RECOVER.path]);
        await p.kubectl([
          "patch",
          "livysession",
          "-n",
          RECOVER_NS,
          RECOVER.name,
          "--type",
          "merge",
          "-p",
          JSON.stringify({ spec: { startupTimeout: STARTUP_TIMEOUT } }),
        ]);
        // the next step after the server is available is the Livy session's creation: kill the leader then
        const starting = await p.waitFor(
          RECOVER_NS,
          RECOVER.name,
          "its server available",
          (ls) =>
            ls.status?.conditions?.some((c) => c.type === "ServerReady" && c.status === "True") ?? false,
          READY_MS.recover,
          (ls) => phaseOf(ls) === "Failed",
        );
        await p.kubectl(["delete", "pod", "-n", RELEASE_NS, killedLeader, "--grace-period=0", "--force"]);
        log(
          `killed the leader ${killedLeader} (SIGKILL) with the Livy session ${starting.status?.livySessionId === undefined ? "not yet recorded" : `${starting.status.livySessionId} recorded`}`,
        );
        const ready = await p.waitReady(RECOVER_NS, RECOVER.name, READY_MS.recover);
        state.recoverReady = ready;
        // A standby that takes over between the killed leader's POST /sessions and Livy registering that
        // session (seconds under load: Livy registers the name after launching its driver) finds no session
        // by that name and POSTs again: Livy refuses it (400, duplicate session name), which is what keeps
        // one Livy session per attempt. Livy launches a driver for such a POST before refusing it; on a
        // loaded machine that cost once pushed the adopted session's driver past Livy's 90 s RSC connect
        // timeout, and Recover replaced it (restarts 1). Either way one Livy session is left: that is the
        // guarantee checked here.
        expect(ready.status?.restarts ?? 0).toBeLessThanOrEqual(1);
        const sessions = await p.livySessionsOnServer(RECOVER_NS, RECOVER.name);
        expect(sessions, "exactly one Livy session on the server").toHaveLength(1);
        expect(sessions[0]?.id).toBe(ready.status?.livySessionId);
        expect(sessions[0]?.name).toMatch(new RegExp(`^${RECOVER_NS}\\.${RECOVER.name}\\.`));
        const holder = await until(
          "a new leader",
          async () => {
            const h = await p.leaseHolder();
            return h && h !== killedLeader ? h : null;
          },
          MIN,
        );
        log(`new leader ${holder}`);
        await until(
          "two operator replicas again",
          async () =>
            (await p.pods(RELEASE_NS, "app.kubernetes.io/name=livy-operator")).filter(
              (o) => !o.metadata.deletionTimestamp && o.status?.containerStatuses?.[0]?.ready,
            ).length === 2,
          5 * MIN,
        );
      },
      25 * MIN,
    );

    it(
      "Recover: the Livy pod killed under the Ready session: recovering, then Ready again on a new pod with one new Livy session",
      async () => {
        const before = need(state.recoverReady, "the Ready Recover session");
        const [pod] = await p.livyPods(RECOVER_NS, RECOVER.name);
        await p.kubectl([
          "delete",
          "pod",
          "-n",
          RECOVER_NS,
          need(pod, "its Livy pod").metadata.name,
          "--grace-period=0",
          "--force",
        ]);
        const recovering = await p.waitFor(
          RECOVER_NS,
          RECOVER.name,
          "Recovering",
          (ls) => readyCondition(ls)?.reason === "Recovering",
          60 * S,
        );
        expect(readyCondition(recovering)?.message).toMatch(/^SessionLost: /);
        const again = await p.waitReady(RECOVER_NS, RECOVER.name, READY_MS.recover);
        expect(again.status?.restarts).toBe((before.status?.restarts ?? 0) + 1);
        const pods: Pod[] = await p.livyPods(RECOVER_NS, RECOVER.name);
        expect(pods.map((x) => x.metadata.uid)).not.toContain(pod?.metadata.uid);
        const sessions = await p.livySessionsOnServer(RECOVER_NS, RECOVER.name);
        expect(sessions.map((s) => s.id)).toEqual([again.status?.livySessionId]);
        expect(sessions[0]?.name).not.toBe(null);
        log(
          `recovered: Livy session ${before.status?.livySessionId} on ${pod?.metadata.name} → ${again.status?.livySessionId} on ${pods[0]?.metadata.name}`,
        );
      },
      22 * MIN,
    );

    it(
      "kubectl delete leaves nothing: no pods, ReplicaSets, Deployments, Services, ConfigMaps or Secrets (events aside)",
      async () => {
        await p.kubectl(["delete", "-f", MINIMAL.path, "--wait", "--timeout=120s"]);
        await p.kubectl(["delete", "-n", RECOVER_NS, "-f", RECOVER.path, "--wait", "--timeout=120s"]);
        for (const ns of [NS, RECOVER_NS])
          await noneLeft(ns, `nothing of the operator left in ${ns}`, 3 * MIN);
        expect(await p.everythingIn(NS)).toEqual(baseline);
        // what a namespace holds by itself: its root CA ConfigMap (and the notebook's RoleBinding, not listed)
        expect(await p.everythingIn(RECOVER_NS)).toEqual(["configmap/kube-root-ca.crt"]);
      },
      8 * MIN,
    );

    it(
      "helm uninstall removes the operator, the gateway and their objects",
      async () => {
        await p.helmUninstall();
        // what stays: the namespace's root CA, and the session key the operator made (not Helm's: kept,
        // so that a reinstall keeps every parked session's credential; docs/gateway.md). The gateway's
        // serving certificate Secret goes with the APIService that owns it.
        const left = async () =>
          (await p.everythingIn(RELEASE_NS)).filter(
            (o) => o !== "configmap/kube-root-ca.crt" && !/^secret\/.+-session-key$/.test(o),
          );
        await until(
          "the release's objects gone",
          async () => {
            const l = await left();
            if (l.length) throw new Error(`still there: ${l.join(", ")}`);
            return true;
          },
          3 * MIN,
        );
      },
      6 * MIN,
    );
  });
}
