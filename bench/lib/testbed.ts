/**
 * The benchmarks' own test bed (never the default one, which the test suites use): brought up on first
 * use in BENCH_STATE_DIR (default /tmp/bench-tb) and left running for the next benchmark.
 * Stop it with `npm run testbed -- down --state-dir /tmp/bench-tb`.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { GROUP, PLURAL } from "../../src/api/index.ts";
import { KubeClient, loadKubeConfig } from "../../src/kube/client.ts";
import { untilCrdEstablished } from "../../test/testbed/process.ts";
import { readState, restartProcess, type TestbedState, up } from "../../test/testbed/testbed.ts";
import { REPO_ROOT } from "./report.ts";

const run = promisify(execFile);

export function benchStateDir(): string {
  return process.env.BENCH_STATE_DIR ?? "/tmp/bench-tb";
}

export interface Bed {
  state: TestbedState;
  kube: KubeClient;
  kubectl(args: string[]): Promise<string>;
  /** Livy stand-in control API. */
  standin: Standin;
}

export interface StandinCounters {
  total: number;
  routes: Record<string, number>;
  paths: Record<string, number>;
}

export class Standin {
  readonly url: string;
  constructor(url: string) {
    this.url = url;
  }
  async #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.url}/_standin/${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
    });
    if (!res.ok) throw new Error(`stand-in ${method} ${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }
  reset(): Promise<unknown> {
    return this.#call("POST", "reset");
  }
  configure(patch: Record<string, unknown>): Promise<unknown> {
    return this.#call("POST", "config", patch);
  }
  counters(): Promise<StandinCounters> {
    return this.#call("GET", "counters");
  }
  resetCounters(): Promise<unknown> {
    return this.#call("POST", "counters/reset");
  }
  /** Sessions the stand-in holds (Livy's own list). */
  async sessionCount(): Promise<number> {
    const res = await fetch(`${this.url}/sessions?size=100000`);
    const body = (await res.json()) as { total: number };
    return body.total;
  }
}

let bed: Bed | null = null;

/** Brings the bench test bed up (or reuses it) and installs the CRD. */
export async function testbed(opts: { needLivy?: boolean } = {}): Promise<Bed> {
  if (bed) return bed;
  const stateDir = benchStateDir();
  process.stderr.write(`[bench] test bed in ${stateDir} (BENCH_STATE_DIR); this may take a minute\n`);
  const state = await up(stateDir);
  if (opts.needLivy && !state.livyUrl)
    throw new Error(
      "this benchmark needs real Livy: the test bed came up without it (LIVY_TESTBED_SKIP_LIVY?)",
    );
  const env = {
    ...process.env,
    KUBECONFIG: state.kubeconfig,
    PATH: `${state.binDirs.join(":")}:${process.env.PATH}`,
  };
  const kubectl = async (args: string[]) =>
    (await run("kubectl", args, { env, maxBuffer: 256 << 20 })).stdout;
  await kubectl(["apply", "--server-side", "--force-conflicts", "-f", join(REPO_ROOT, "crds")]);
  await untilCrdEstablished(kubectl, `${PLURAL}.${GROUP}`);
  const kube = await KubeClient.create(loadKubeConfig(state.kubeconfig), { connections: 64 });
  bed = { state, kube, kubectl, standin: new Standin(state.standinUrl) };
  return bed;
}

/**
 * Client rate limits of the control plane's controllers. "default" is the test bed as it starts (and as
 * Kubernetes ships: kube-controller-manager 20 QPS / burst 30 and 5 Deployment and ReplicaSet workers,
 * kube-scheduler 50 QPS / burst 100); "raised" lifts them, so that a benchmark of the operator at scale
 * measures the operator rather than those limits. Restarts the component only when its flags change.
 */
export const RAISED_FLAGS: Record<string, string[]> = {
  "kube-controller-manager": [
    "--kube-api-qps=1000",
    "--kube-api-burst=2000",
    "--concurrent-deployment-syncs=50",
    "--concurrent-replicaset-syncs=50",
  ],
  "kube-scheduler": ["--kube-api-qps=1000", "--kube-api-burst=2000"],
};

export async function setControlPlaneLimits(
  b: Bed,
  limits: "default" | "raised",
): Promise<Record<string, string[]>> {
  const stateDir = b.state.stateDir;
  const out: Record<string, string[]> = {};
  for (const [name, extra] of Object.entries(RAISED_FLAGS)) {
    const proc = readState(stateDir)?.processes.find((p) => p.name === name);
    if (!proc?.spec)
      throw new Error(`${name}: the test bed in ${stateDir} has no recorded command line (restart it)`);
    const base = proc.spec.args.filter((a) => !extra.some((e) => a.startsWith(`${e.split("=")[0]}=`)));
    const want = limits === "raised" ? [...base, ...extra] : base;
    out[name] = want.filter((a) => !base.includes(a));
    if (JSON.stringify(want) === JSON.stringify(proc.spec.args)) continue;
    process.stderr.write(`[bench] restarting ${name} with ${limits} client limits\n`);
    await restartProcess(stateDir, name, { args: want });
  }
  // give the restarted controllers a moment to list and start their workers
  await new Promise((r) => setTimeout(r, 5_000));
  return out;
}

/** CPU seconds (user + system) each test-bed process has used so far, by component name. */
export function componentCpu(b: Bed): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of readState(b.state.stateDir)?.processes ?? []) {
    try {
      const stat = readFileSync(`/proc/${p.pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out[p.name] = (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      out[p.name] = Number.NaN;
    }
  }
  return out;
}

/** CPU seconds the whole machine has been busy since boot (all processes, anyone's), from /proc/stat. */
export function machineBusyCpu(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const [, user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line
    .trim()
    .split(/\s+/)
    .map(Number);
  return (user + nice + system + irq + softirq + steal) / 100;
}
