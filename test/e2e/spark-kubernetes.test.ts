/**
 * Spark's kubernetes mode on the test bed's real node (executors cannot run on kwok's fake pods), with the
 * shared end-to-end harness (cluster.ts, product.ts): the chart installed with the images built here, the
 * operator in the cluster with exactly the chart's RBAC, the Livy server image's Spark starting executor
 * pods from the same image through the API server with the driver's ServiceAccount.
 *
 * Two LivySessions start at once (their cold starts overlap: this file costs one cold start of wall time,
 * not two): `idle` runs the statement that needs executors, is kept busy past its idleTimeout by a long
 * statement and left to idle out; `crash` has the operator killed while its executor pods are starting, is
 * checked for duplicates once the operator is back, gives its driver's account to a `kubectl auth can-i`
 * matrix, and is deleted while its executors run. After each, nothing of that session remains: no
 * executor pod, no ConfigMap, no Service, no identity.
 *
 * The node has 2 cores and 24 GiB shared with everything else: executors ask for 100m CPU and 512m of heap
 * (under 1 GiB with Spark's overhead), two for `idle` (repartition(4) spreads over both), one for `crash`.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isIdle, type LivySession, phaseOf } from "../../src/api/index.ts";
import { connectKube, connectLivySession } from "../../src/livy/kube.ts";
import { testbed } from "../testbed/context.ts";
import { testbedCluster, testbedUnavailable } from "./cluster.ts";
import { type Cluster, type Pod, Product, RELEASE, RELEASE_NS } from "./product.ts";

const log = (msg: string) =>
  process.stderr.write(`[spark-k8s ${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
const S = 1_000;
const MIN = 60 * S;
/** A cold start of a Livy server with a Spark driver and its executors, on 2 shared cores under load. */
const START_MS = 20 * MIN;
const STATEMENT = "spark.range(10_000_000).repartition(4).count()";
/** Executors asked for by each session. */
const EXECUTORS: Record<string, number> = { idle: 2, crash: 1 };

const info = testbed();
const reason = testbedUnavailable(info);
if (reason) process.stderr.write(`\n[spark-k8s] the Spark-on-Kubernetes suite did NOT run: ${reason}.\n\n`);

const spec = (idleTimeout: string, instances: number) => ({
  kind: "pyspark",
  idleTimeout,
  startupTimeout: "30m",
  server: { resources: { requests: { cpu: "100m", memory: "1Gi" }, limits: { memory: "2Gi" } } },
  session: { driverMemory: "512m" },
  spark: { mode: "kubernetes", executors: { instances, cores: 1, cpuRequest: "100m", memory: "512m" } },
});

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs / 1000} s waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ""}`,
      );
    await sleep(500);
  }
}

describe.skipIf(reason !== null)("Spark on Kubernetes on the real node", () => {
  const ns = `spark-${Date.now().toString(36)}`;
  let cluster: Cluster | null = null;
  let p: Product;
  /** The Livy pods of the two sessions, as they were when Ready. */
  const livyPod: Record<string, Pod> = {};

  const executors = (name: string) => p.pods(ns, `livy.dev/executor-of=${name}`);
  const live = (pods: Pod[]) => pods.filter((x) => !x.metadata.deletionTimestamp);
  const apply = (name: string, body: Record<string, unknown>) =>
    p.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "livy.dev/v1alpha1",
        kind: "LivySession",
        metadata: { name, namespace: ns },
        spec: body,
      }),
    );

  /** What is left in the namespace of session `name`: its objects, and anything owned by its Livy pod. */
  async function leftovers(name: string): Promise<string[]> {
    const owner = livyPod[name]?.metadata.uid;
    const out: string[] = [];
    for (const kind of [
      "pods",
      "configmaps",
      "services",
      "persistentvolumeclaims",
      "serviceaccounts",
      "rolebindings.rbac.authorization.k8s.io",
    ]) {
      const items = (
        JSON.parse(await p.kubectl(["get", kind, "-n", ns, "-o", "json"])) as {
          items: Array<{
            metadata: {
              name: string;
              labels?: Record<string, string>;
              ownerReferences?: Array<{ uid: string }>;
            };
          }>;
        }
      ).items;
      for (const o of items) {
        const m = o.metadata;
        const ours =
          m.name === `livy-${name}` ||
          m.labels?.["livy.dev/session"] === name ||
          m.labels?.["app.kubernetes.io/instance"] === name ||
          m.labels?.["livy.dev/executor-of"] === name ||
          (owner !== undefined && (m.ownerReferences ?? []).some((r) => r.uid === owner));
        if (ours) out.push(`${kind}/${m.name}`);
      }
    }
    return out;
  }

  async function nothingLeft(name: string): Promise<void> {
    await until(`nothing of ${name} left`, async () => (await leftovers(name)).length === 0, 5 * MIN).catch(
      async (err: unknown) => {
        throw new Error(`${String(err)}\nleft: ${(await leftovers(name)).join(", ")}`);
      },
    );
  }

  /**
   * What a parked session keeps for its wake (decide.ts removeServer): its Service, ConfigMap and the
   * driver's ServiceAccount and RoleBinding, named livy-<name>. Nothing else of it may be left: no Livy
   * pod, no executor pod, nothing the Livy pod owned.
   */
  const KEPT_WHILE_PARKED = [
    "configmaps",
    "services",
    "serviceaccounts",
    "rolebindings.rbac.authorization.k8s.io",
  ];
  async function nothingRuns(name: string): Promise<void> {
    const kept = KEPT_WHILE_PARKED.map((kind) => `${kind}/livy-${name}`).sort();
    let left: string[] = [];
    await until(
      `nothing of ${name} running, only what it keeps for the wake`,
      async () => {
        left = (await leftovers(name)).sort();
        return JSON.stringify(left) === JSON.stringify(kept);
      },
      5 * MIN,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\nleft: ${left.join(", ")}; expected: ${kept.join(", ")}`);
    });
  }

  /** Runs a statement from the host through the API server's service proxy, as a user's client does. */
  async function runStatement(name: string, code: string, during?: () => Promise<void>) {
    const conn = await connectKube({ kubeconfig: cluster?.kubeconfig });
    try {
      const { client, session } = await connectLivySession(conn.kube, ns, name, { timeoutMs: MIN });
      try {
        const handle = await session.submit(code, { timeoutMs: 15 * MIN });
        let done = false;
        const watching = (async () => {
          while (!done) {
            await during?.();
            await sleep(500);
          }
        })();
        try {
          return await handle.result;
        } finally {
          done = true;
          await watching;
        }
      } finally {
        await client.close();
      }
    } finally {
      await conn.close();
    }
  }

  beforeAll(async () => {
    cluster = await testbedCluster(info);
    p = new Product(cluster, log);
    const started = Date.now();
    // one replica: killing it is the operator's crash (no standby takes over)
    await p.helmInstall({ replicas: 1 });
    log(`helm install --wait: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await p.namespace(ns);
  }, 30 * MIN);

  afterAll(async () => {
    if (!cluster) return;
    await p
      .kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait", "--timeout=180s"])
      .catch((e) => log(String(e)));
    await p.helmUninstall();
    await p
      .kubectl(["delete", "namespace", ns, RELEASE_NS, "--ignore-not-found", "--wait", "--timeout=180s"])
      .catch(() => "");
    await p.close();
    await cluster.dispose();
  }, 15 * MIN);

  it(
    "starts two sessions; the operator killed while executor pods start converges: one Livy session each, exactly the executors asked for, owned by the Livy pod",
    async () => {
      // `idle` gets its short idleTimeout in the test of it (below): set now, it could idle out while
      // `crash` starts
      await apply("idle", spec("30m", EXECUTORS.idle ?? 0));
      await apply("crash", spec("30m", EXECUTORS.crash ?? 0));
      // the first executor pod object of `crash`: its executors are being started now
      const starting = await until(
        "crash's first executor pod",
        async () => {
          const ex = await executors("crash");
          return ex.length > 0 && ex;
        },
        START_MS,
      );
      const [operator] = await p.pods(RELEASE_NS, "app.kubernetes.io/name=livy-operator");
      if (!operator) throw new Error("no operator pod");
      log(
        `killing operator ${operator.metadata.name} with crash's executors ${starting.map((x) => `${x.metadata.name}:${x.status?.phase}`).join(", ")}`,
      );
      await p.kubectl([
        "delete",
        "pod",
        "-n",
        RELEASE_NS,
        operator.metadata.name,
        "--grace-period=0",
        "--force",
      ]);

      for (const name of ["idle", "crash"]) {
        const ls = await p.waitReady(ns, name, START_MS);
        expect(ls.status?.sparkUiURL).toBe(`http://livy-${name}.${ns}.svc:4040`);
        const [server] = await p.livyPods(ns, name);
        if (!server) throw new Error(`no Livy pod for ${name}`);
        livyPod[name] = server;
        // one Livy session on the server: the one the attempt created, adopted after the crash
        const onServer = await p.livySessionsOnServer(ns, name);
        expect(onServer.map((x) => x.id)).toEqual([ls.status?.livySessionId]);
        // exactly the executors asked for, owned by the driver's pod, running
        const want = EXECUTORS[name] ?? 0;
        const ex = await until(
          `${name}'s ${want} executors Running`,
          async () => {
            const list = live(await executors(name));
            return list.length === want && list.every((x) => x.status?.phase === "Running") && list;
          },
          5 * MIN,
        );
        for (const x of ex) {
          const full = JSON.parse(
            await p.kubectl(["get", "pod", "-n", ns, x.metadata.name, "-o", "json"]),
          ) as { metadata: { ownerReferences?: unknown[]; labels?: Record<string, string> } };
          expect(full.metadata.ownerReferences).toEqual([
            expect.objectContaining({ kind: "Pod", name: server.metadata.name, uid: server.metadata.uid }),
          ]);
          expect(full.metadata.labels).toMatchObject({
            "spark-role": "executor",
            "app.kubernetes.io/component": "spark-executor",
            "app.kubernetes.io/instance": name,
          });
        }
        // the Spark UI behind the Service's spark-ui port (through the API server's service proxy)
        const apps = JSON.parse(
          await p.kubectl([
            "get",
            "--raw",
            `/api/v1/namespaces/${ns}/services/livy-${name}:4040/proxy/api/v1/applications`,
          ]),
        ) as unknown[];
        expect(apps).toHaveLength(1);
        // and through the gateway, served by the API server (the path `livyctl --route apiserver` uses), with
        // the links of its pages under that prefix (the gateway's X-Forwarded-Context)
        const ui = `/apis/livy.dev/gateway/namespaces/${ns}/livysessions/${name}/proxy/sparkui`;
        const viaGateway = JSON.parse(
          await p.kubectl(["get", "--raw", `${ui}/api/v1/applications`]),
        ) as unknown[];
        expect(viaGateway).toHaveLength(1);
        const jobs = await p.kubectl(["get", "--raw", `${ui}/jobs/`]);
        expect(jobs).toContain("Spark Jobs");
        expect(jobs).toContain(`${ui}/static/`);
      }
      // the operator that replaced the killed one is the one running
      const operators = await p.pods(RELEASE_NS, "app.kubernetes.io/name=livy-operator");
      expect(operators.map((x) => x.metadata.name)).not.toContain(operator.metadata.name);
    },
    2 * START_MS,
  );

  it(
    `runs ${STATEMENT} on the executor pods, observed Running meanwhile`,
    async () => {
      let running = 0;
      const result = await runStatement("idle", STATEMENT, async () => {
        const phases = live(await executors("idle")).map((x) => x.status?.phase);
        running = Math.max(running, phases.filter((x) => x === "Running").length);
      });
      expect(result.text).toBe("10000000");
      expect(running, "executor pods Running while the statement ran").toBe(EXECUTORS.idle);
    },
    20 * MIN,
  );

  it(
    "a statement on the executors longer than idleTimeout keeps the session Ready; then it idles out: nothing of it runs, and deleted nothing of it remains",
    async () => {
      let started = 0;
      let shortened = false;
      let notReady: string | null = null;
      let running = 0;
      // 120 s of sleep in tasks on both executors; once it runs, idleTimeout becomes 60 s (set earlier, the
      // time since the last statement could already exceed it)
      const result = await runStatement(
        "idle",
        'sc.parallelize(range(2), 2).foreach(lambda _: __import__("time").sleep(120))',
        async () => {
          if (!shortened) {
            shortened = true;
            await apply("idle", spec("60s", EXECUTORS.idle ?? 0));
            started = Date.now();
          }
          const now = await p.get(ns, "idle");
          if (now && phaseOf(now) !== "Ready") notReady ??= JSON.stringify(now.status?.conditions);
          const phases = live(await executors("idle")).map((x) => x.status?.phase);
          running = Math.max(running, phases.filter((x) => x === "Running").length);
        },
      );
      expect(result.kind).toBe("text"); // a failed statement rejects with StatementError
      expect(Date.now() - started, "the statement outlasted idleTimeout").toBeGreaterThan(60 * S);
      expect(notReady, "Ready throughout the long statement").toBeNull();
      expect(running, "executor pods Running while the statement ran").toBe(EXECUTORS.idle);

      await p.waitFor(ns, "idle", "idle", (s: LivySession) => isIdle(s), 5 * MIN);
      await nothingRuns("idle");
      // and what it kept goes with it
      await p.kubectl(["delete", "livysession", "idle", "-n", ns, "--timeout=300s"]);
      await nothingLeft("idle");
    },
    30 * MIN,
  );

  it("the driver's ServiceAccount may run executors in its namespace and nothing elsewhere (kubectl auth can-i)", async () => {
    const as = `--as=system:serviceaccount:${ns}:livy-crash`;
    const can = async (args: string[]) => {
      const r = await p.exec("kubectl", ["auth", "can-i", as, ...args]);
      return r.stdout.trim();
    };
    const other = RELEASE_NS;
    for (const yes of [
      ["create", "pods", "-n", ns],
      ["watch", "pods", "-n", ns],
      ["delete", "pods", "-n", ns],
      ["deletecollection", "pods", "-n", ns],
      ["create", "configmaps", "-n", ns],
      ["deletecollection", "configmaps", "-n", ns],
      ["create", "services", "-n", ns],
      ["create", "persistentvolumeclaims", "-n", ns],
    ])
      expect(await can(yes), yes.join(" ")).toBe("yes");
    for (const no of [
      // another namespace: nothing
      ["create", "pods", "-n", other],
      ["list", "pods", "-n", other],
      ["get", "configmaps", "-n", other],
      ["delete", "services", "-n", other],
      ["create", "persistentvolumeclaims", "-n", other],
      ["list", "pods", "--all-namespaces"],
      // its own namespace: nothing beyond executors
      ["get", "secrets", "-n", ns],
      ["create", "deployments.apps", "-n", ns],
      ["create", "rolebindings.rbac.authorization.k8s.io", "-n", ns],
      ["create", "pods", "--subresource=exec", "-n", ns],
      ["patch", "livysessions.livy.dev", "-n", ns],
      ["create", "serviceaccounts", "--subresource=token", "-n", ns],
      // cluster-scoped
      ["list", "nodes"],
      ["list", "namespaces"],
      ["create", "clusterrolebindings.rbac.authorization.k8s.io"],
    ])
      expect(await can(no), no.join(" ")).toBe("no");
    // the binding is to the chart's drivers' ClusterRole, in this namespace only
    const rb = JSON.parse(await p.kubectl(["get", "rolebinding", "livy-crash", "-n", ns, "-o", "json"])) as {
      roleRef: { kind: string; name: string };
    };
    expect(rb.roleRef).toMatchObject({ kind: "ClusterRole", name: `${RELEASE}-spark-driver` });
  });

  it(
    "deleting a session whose executors run leaves nothing of it: no executor pod, ConfigMap, Service or identity",
    async () => {
      expect(live(await executors("crash")).filter((x) => x.status?.phase === "Running")).toHaveLength(
        EXECUTORS.crash ?? 0,
      );
      await p.kubectl(["delete", "livysession", "crash", "-n", ns, "--timeout=300s"]);
      await nothingLeft("crash");
    },
    10 * MIN,
  );
});
