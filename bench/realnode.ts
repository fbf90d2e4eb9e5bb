/**
 * The product on the test bed's real node, as a user runs it: the chart installed with the images built
 * here, examples/pyspark-minimal.yaml applied, real Livy on Spark in a pod.
 *   - cold start: apply → first result, split into phases observed every 50 ms (the operator's objects, the
 *     pod created, scheduled, its container running with the image already present, Livy answering, the
 *     Spark session idle = the LivySession Ready, the first statement's result);
 *   - wake after an idle teardown, the same way (from the demand annotation);
 *   - the Livy pod's memory with one idle pyspark session: RSS of each process in the container and the
 *     container's cgroup;
 * for `--n` rounds (default 2). A fresh test bed unless `--state-dir DIR` names a running one (with the
 * images imported: `npm run testbed -- up --image ...`); the chart is installed (1 replica, its defaults)
 * and uninstalled again.
 *
 * "Livy up" is polled from the host at the pod's IP (the test bed routes pod IPs to the host); the first
 * statement goes as a user's does, through the API server's service proxy.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parse } from "yaml";
import { GROUP, type LivySession, phaseOf, VERSION } from "../src/api/index.ts";
import { CORE, resourcePath } from "../src/kube/client.ts";
import { connectLivySession } from "../src/livy/kube.ts";
import { type Pod, Product } from "../test/e2e/product.ts";
import { REPO_ROOT } from "../test/testbed/paths.ts";
import { until } from "../test/testbed/process.ts";
import { type Args, type BenchBody, log } from "./lib/bench.ts";
import { onRealNode } from "./lib/realnode.ts";
import { median, round } from "./lib/stats.ts";

const NS = "default";
const STARTUP_TIMEOUT = "15m";
/** The startupTimeout and a minute more: past it the operator has failed or restarted the session. */
const START_MS = 16 * 60_000;
/** Bounds the waits for an idle teardown's pods and a deletion to finish (no wait can hang). */
const GONE_MS = 5 * 60_000;
const NAME = "pyspark-minimal";
const PATH = resourcePath(
  { group: GROUP, version: VERSION, plural: "livysessions", namespaced: true },
  NS,
  NAME,
);
const PHASES = [
  ["objects", "the operator's Deployment, Service, ConfigMap applied"],
  ["podCreated", "Deployment → ReplicaSet → pod"],
  ["scheduled", "scheduling"],
  ["running", "sandbox, image already present, container started"],
  ["livyUp", "Livy server up (GET /version answers)"],
  ["ready", "Spark session idle (LivySession Ready)"],
  ["firstResult", "first statement: spark.range(1000).count()"],
] as const;
type Phase = (typeof PHASES)[number][0];
type Marks = Partial<Record<Phase, number>>;

/** Follows one start from `t0`: every 50 ms, the Deployment, the pod, Livy at the pod's IP, the LivySession. */
export async function followStart(
  p: Product,
  t0: number,
  oldPods: Set<string>,
  timeoutMs: number,
): Promise<Marks> {
  const k = await p.kube();
  const marks: Marks = {};
  const at = (phase: Phase) => {
    marks[phase] ??= Date.now() - t0;
  };
  const deadline = t0 + timeoutMs;
  let ip = "";
  while (Date.now() < deadline && marks.ready === undefined) {
    const [dep, pods, ls] = await Promise.all([
      k.getOrNull(resourcePath(CORE.deployments, NS, `livy-${NAME}`)),
      p.livyPods(NS, NAME),
      k.getOrNull<LivySession>(PATH),
    ]);
    if (dep) at("objects");
    const pod: Pod | undefined = pods.find(
      (x) => !oldPods.has(x.metadata.uid) && !x.metadata.deletionTimestamp,
    );
    if (pod) {
      at("podCreated");
      if (pod.spec.nodeName) at("scheduled");
      if (pod.status?.containerStatuses?.[0]?.state?.running) at("running");
      ip = pod.status?.podIP ?? ip;
    }
    if (ip && marks.running !== undefined && marks.livyUp === undefined) {
      const ok = await fetch(`http://${ip}:8998/version`, { signal: AbortSignal.timeout(1_000) })
        .then(async (r) => {
          await r.body?.cancel();
          return r.ok;
        })
        .catch(() => false);
      if (ok) at("livyUp");
    }
    if (ls && phaseOf(ls) === "Ready") at("ready");
    if (ls && phaseOf(ls) === "Failed") throw new Error(`Failed: ${ls.status?.message}`);
    await sleep(50);
  }
  if (marks.ready === undefined) throw new Error(`not Ready within ${timeoutMs / 1000} s`);
  return marks;
}

/**
 * The first statement, from the host as a user sends it: the TypeScript client through the API server's
 * service proxy (connectLivySession's default outside the cluster).
 */
async function firstResult(p: Product, t0: number, marks: Marks): Promise<void> {
  const { client, session } = await connectLivySession(await p.kube(), NS, NAME, { timeoutMs: 60_000 });
  try {
    const r = await session.run("spark.range(1000).count()", { timeoutMs: 600_000 });
    if (r.text !== "1000") throw new Error(`spark.range(1000).count() gave ${r.text}`);
    marks.firstResult = Date.now() - t0;
  } finally {
    await client.close();
  }
}

/** Was the image already on the node (the kubelet's Pulled event says so)? */
export async function imagePresent(p: Product, pod: string): Promise<boolean> {
  const events = await p.kubectl([
    "get",
    "events",
    "-n",
    NS,
    "--field-selector",
    `involvedObject.name=${pod}`,
    "-o",
    "json",
  ]);
  const items = (JSON.parse(events) as { items: Array<{ reason: string; message: string }> }).items;
  return items.some((e) => e.reason === "Pulled" && /already present/.test(e.message));
}

/** RSS of each process in the Livy container, by role, and the container's cgroup (cgroup v1 or v2), MiB. */
export async function livyMemory(p: Product): Promise<Record<string, number>> {
  const code = `
import os, json
out = {}
def role(cmd):
    if "org.apache.livy.server.LivyServer" in cmd: return "Livy server (JVM)"
    if "org.apache.spark.deploy.SparkSubmit" in cmd or "RSCDriverBootstrapper" in cmd: return "Spark driver (JVM)"
    if "python" in cmd: return "Python REPL"
    return "other (tini, shells)"
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
        rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
    except Exception:
        continue
    if pid == str(os.getpid()): continue
    out[role(cmd)] = out.get(role(cmd), 0) + rss / 1024
for f, key in (("/sys/fs/cgroup/memory/memory.usage_in_bytes", "cgroup usage"), ("/sys/fs/cgroup/memory.current", "cgroup usage")):
    if os.path.exists(f): out[key] = int(open(f).read()) / 2**20
st = "/sys/fs/cgroup/memory/memory.stat"
if os.path.exists(st):
    s = dict(l.split() for l in open(st))
    out["cgroup rss"] = int(s.get("total_rss", s.get("rss", 0))) / 2**20
print(json.dumps(out))
`;
  const out = await p.kubectl(["exec", "-n", NS, `deploy/livy-${NAME}`, "--", "python3", "-c", code]);
  const raw = JSON.parse(out) as Record<string, number>;
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, round(v, 1)]));
}

export async function realnode(args: Args): Promise<BenchBody> {
  const n = args.num("n", 2);
  const given = args.str("state-dir", "");
  const idleTimeout = "10s";
  const manifest = parse(readFileSync(join(REPO_ROOT, "examples", `${NAME}.yaml`), "utf8")) as {
    spec: Record<string, unknown>;
  };
  // The machine's allowance, as the e2e suite gives the same example (test/e2e/suite.ts): a real Livy
  // session's start took over 5 min (the example's default startupTimeout) at load average 30-60 on 2 cores,
  // and the first run of this benchmark ended there, Failed: StartupTimeout.
  manifest.spec.startupTimeout = STARTUP_TIMEOUT;
  return onRealNode(given, "bench-realnode-", async (cluster) => {
    const p = new Product(cluster, (m) => log(m));
    const k = await p.kube();
    try {
      const t = Date.now();
      await p.helmInstall({ replicas: 1 });
      const helmS = (Date.now() - t) / 1000;
      const cold: Marks[] = [];
      const wake: Marks[] = [];
      let memory: Record<string, number> = {};
      let present = true;
      for (let i = 0; i < n; i++) {
        log(`round ${i + 1}/${n}: cold start`);
        let t0 = Date.now();
        await k.apply(PATH, manifest, "bench-realnode");
        const c = await followStart(p, t0, new Set(), START_MS);
        await firstResult(p, t0, c);
        cold.push(c);
        const [pod] = await p.livyPods(NS, NAME);
        present &&= await imagePresent(p, pod?.metadata.name ?? "");
        if (i === 0) {
          await sleep(10_000);
          memory = await livyMemory(p);
        }
        log(`round ${i + 1}/${n}: idle after ${idleTimeout}, then wake`);
        await k.mergePatch(PATH, { spec: { idleTimeout } });
        await p.waitFor(NS, NAME, "Idle", (ls) => phaseOf(ls) === "Idle", 180_000);
        await until(
          "the idle server's pods gone",
          async () => !(await p.livyPods(NS, NAME)).length,
          GONE_MS,
          200,
        );
        t0 = Date.now();
        await k.mergePatch(PATH, {
          metadata: { annotations: { "livy.dev/demanded-at": new Date().toISOString() } },
          spec: { idleTimeout: null },
        });
        const w = await followStart(p, t0, new Set(), START_MS);
        await firstResult(p, t0, w);
        wake.push(w);
        await k.delete(PATH);
        await until(
          "the LivySession and its objects gone",
          async () => !(await p.get(NS, NAME)) && !(await p.ownedLeft(NS)).length,
          GONE_MS,
          200,
        );
      }
      const table = (title: string, runs: Marks[]) => ({
        title,
        columns: [
          "phase",
          "median ms (step)",
          "median ms (from apply)",
          ...runs.map((_, i) => `run ${i + 1} (step)`),
        ],
        rows: PHASES.map(([ph, what], j) => {
          const prev = j === 0 ? undefined : PHASES[j - 1]?.[0];
          const step = (m: Marks) => (m[ph] ?? Number.NaN) - (prev ? (m[prev] ?? Number.NaN) : 0);
          return [
            what,
            round(median(runs.map(step)), 0),
            round(median(runs.map((m) => m[ph] ?? Number.NaN)), 0),
            ...runs.map((m) => round(step(m), 0)),
          ];
        }),
      });
      const total = (runs: Marks[]) => round(median(runs.map((m) => m.firstResult ?? Number.NaN)) / 1000, 1);
      return {
        params: { n, idleTimeout, startupTimeout: STARTUP_TIMEOUT, stateDir: given || "fresh" },
        results: { helmInstallS: helmS, cold, wake, memoryMiB: memory, imageAlreadyPresent: present },
        goals: [],
        tables: [
          table(`Cold start on the real node: kubectl apply → first result (median ${total(cold)} s)`, cold),
          table(`Wake after an idle teardown: demand → first result (median ${total(wake)} s)`, wake),
          {
            title: "The Livy pod with one idle pyspark session, after its first statement (MiB)",
            columns: ["what", "MiB"],
            rows: Object.entries(memory),
          },
        ],
        notes: [
          `helm install --wait (1 replica, the gateway's 2): ${round(helmS, 1)} s.`,
          `Image already present on the node in every start: ${present} (the kubelet's Pulled event).`,
          "Phases are when a 50 ms poll first saw each step; Livy up is polled at the pod's IP from the host; the first statement goes through the API server's service proxy (the TypeScript client's default outside the cluster).",
          "The Livy pod runs Livy and the Spark driver (local mode) and its Python REPL in one container: its RSS is theirs.",
        ],
      };
    } finally {
      await p.helmUninstall().catch(() => undefined);
      await p.close();
    }
  });
}
