import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestbedInfo } from "./context.ts";
import { startControlPlane } from "./controlplane.ts";
import {
  importImage,
  type NodeState,
  prepareNode,
  REAL_NODE,
  startNode,
  startRuntime,
  stopNode,
  waitForDns,
} from "./node.ts";
import { cacheDir, goBinaries, REPO_ROOT, TESTBED_DIR } from "./paths.ts";
import { freePort, isAlive, type RunningProcess, startProcess, stopProcess, waitUntil } from "./process.ts";
import type { NodeNetwork } from "./slots.ts";

export interface TestbedState extends TestbedInfo {
  processes: RunningProcess[];
  apiserverUrl: string;
  startedAt: string;
  /** The slot's addresses and ranges (slots.ts), recorded as soon as the slot is claimed, for `down`. */
  network?: NodeNetwork;
  /** The real node, once it is up. */
  node: NodeState | null;
}

const log = (msg: string) => process.stderr.write(`[testbed] ${msg}\n`);

export function defaultStateDir(): string {
  return join(cacheDir(), "run");
}

export function skipLivy(): boolean {
  return process.env.LIVY_TESTBED_SKIP_LIVY === "1";
}

function runBuild(script: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [join(TESTBED_DIR, "build", script), ...args], { stdio: ["ignore", 2, 2] });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`test bed build ${script} ${args.join(" ")} failed (exit ${code})`)),
    );
  });
}

export function skipImages(): boolean {
  return process.env.LIVY_TESTBED_SKIP_IMAGES === "1";
}

/**
 * Builds what is missing from the cache (Go components, Livy/Spark, and the project's container images, in
 * parallel); cached parts are instant.
 */
export async function build(): Promise<void> {
  const started = Date.now();
  const tasks: Promise<unknown>[] = [runBuild("go-components.sh", [])];
  if (!skipLivy()) {
    const { ensureLivyInstall } = await import("./livy.ts");
    tasks.push(ensureLivyInstall());
  }
  if (!skipImages()) {
    // the operator image and (with a Livy release) the Livy server image, with `docker build`
    const { projectImages } = await import("./images.ts");
    tasks.push(projectImages({ livy: !skipLivy() }));
  }
  const results = await Promise.allSettled(tasks);
  const failures = results.flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : []));
  if (failures.length) throw new Error(`the test bed could not be built:\n  ${failures.join("\n  ")}`);
  log(`components ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

function saveState(stateDir: string, state: Partial<TestbedState>): void {
  writeFileSync(join(stateDir, "state.json"), `${JSON.stringify(state, null, 2)}\n`);
}

export function readState(stateDir = defaultStateDir()): TestbedState | null {
  const file = join(stateDir, "state.json");
  if (!existsSync(file)) return null;
  return JSON.parse(readFileSync(file, "utf8")) as TestbedState;
}

/**
 * Brings the whole test bed up in `stateDir`: control plane with a fake node (kwok) and a real node (kubelet,
 * containerd, kube-proxy, CoreDNS), real Livy, the Livy stand-in. Whatever started before a failure is stopped
 * again, and the error names the component.
 */
export interface UpOptions {
  /**
   * More image archives (`docker save` format) to import into the real node's containerd before the kubelet
   * starts, e.g. the project's images; a promise, so that they can be built while the test bed comes up.
   */
  nodeImages?: string[] | Promise<string[]>;
}

/**
 * `livyctl` and `kubectl-livy` for the test bed's PATH (`eval "$(npm run testbed -- env)"`), so that the
 * README's commands work as printed from a checkout: this checkout's source, run by the Node that runs the
 * test bed (the installed package puts dist/cli/*.js there instead).
 */
function cliShims(stateDir: string): string {
  const dir = join(stateDir, "bin");
  mkdirSync(dir, { recursive: true });
  for (const [bin, main] of [
    ["livyctl", "main.ts"],
    ["kubectl-livy", "kubectl-livy.ts"],
  ] as const) {
    const script = `#!/bin/sh\nexec '${process.execPath}' '${join(REPO_ROOT, "src", "cli", main)}' "$@"\n`;
    writeFileSync(join(dir, bin), script, { mode: 0o755 });
  }
  return dir;
}

export async function up(stateDir = defaultStateDir(), opts: UpOptions = {}): Promise<TestbedState> {
  const existing = readState(stateDir);
  if (existing?.processes.every((p) => isAlive(p.pid))) {
    log(`already up (${stateDir})`);
    return existing;
  }
  if (existing) await down(stateDir);
  await build();
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(join(stateDir, "logs"), { recursive: true });
  const started = Date.now();
  const bins = goBinaries();
  const processes: RunningProcess[] = [];
  const partial: Partial<TestbedState> = { stateDir, processes, startedAt: new Date().toISOString() };
  const record = (p: RunningProcess) => {
    processes.push(p);
    saveState(stateDir, partial);
  };
  const phase = (what: string, since: number) =>
    log(`${what} in ${((Date.now() - since) / 1000).toFixed(1)} s`);
  try {
    // Livy's JVM start and the control plane's overlap: both take seconds on 2 cores.
    const livyPromise = skipLivy() ? Promise.resolve(null) : startLivy(stateDir, record);
    const standinPromise = startStandin(stateDir, record);
    // awaited below, after the node: a rejection meanwhile must not end the process unhandled, before the
    // catch below stops what was started (it left a whole test bed running)
    livyPromise.catch(() => undefined);
    standinPromise.catch(() => undefined);
    let t = Date.now();
    const { net, holder } = await prepareNode(
      stateDir,
      bins,
      record,
      (n) => {
        partial.network = n;
        saveState(stateDir, partial);
      },
      log,
    );
    phase(`node network (slot ${net.slot}, API server on ${net.hostIp}, node ${net.nodeIp})`, t);
    t = Date.now();
    // the node's containerd and its images need no API server: they start meanwhile
    const runtimePromise = startRuntime({
      stateDir,
      net,
      holder,
      bins,
      record,
      extraImages: opts.nodeImages,
    });
    runtimePromise.catch(() => undefined); // awaited below; a control plane failure comes first
    const cp = await startControlPlane(bins, stateDir, record, net, REAL_NODE);
    phase("control plane", t);
    const runtime = await runtimePromise;
    t = Date.now();
    const node = await startNode({
      stateDir,
      net,
      holder,
      runtime,
      bins,
      pki: cp.pki,
      apiserverUrl: cp.apiserverUrl,
      adminKubeconfig: cp.kubeconfig,
      record,
    });
    phase(`real node ${node.name} Ready`, t);
    t = Date.now();
    const [livy, standinUrl] = await Promise.all([
      livyPromise,
      standinPromise,
      waitForDns(bins, cp.kubeconfig).then(() => phase("cluster DNS", t)),
    ]);
    const state: TestbedState = {
      stateDir,
      kubeconfig: cp.kubeconfig,
      apiserverUrl: cp.apiserverUrl,
      binDirs: [...bins.binDirs, cliShims(stateDir)],
      livyUrl: livy?.url ?? null,
      python: livy?.python ?? null,
      sparkHome: livy?.sparkHome ?? null,
      standinUrl,
      processes,
      network: net,
      node,
      startedAt: partial.startedAt ?? new Date().toISOString(),
    };
    saveState(stateDir, state);
    log(`up in ${((Date.now() - started) / 1000).toFixed(1)} s (${stateDir})`);
    return state;
  } catch (err) {
    log(`start failed, stopping what was started: ${err instanceof Error ? err.message : String(err)}`);
    if (partial.network) await stopNode(partial.network, processes, stateDir).catch(() => undefined);
    await Promise.all(processes.map((p) => stopProcess(p.pid)));
    throw err;
  }
}

async function startLivy(
  stateDir: string,
  record: (p: RunningProcess) => void,
): Promise<{ url: string; python: string; sparkHome: string }> {
  const { ensureLivyInstall, livyServerCommand } = await import("./livy.ts");
  const install = await ensureLivyInstall();
  const port = await freePort();
  const workDir = join(stateDir, "livy");
  mkdirSync(workDir, { recursive: true });
  const cmd = livyServerCommand(install, { port, workDir });
  const proc = startProcess({ name: "livy", ...cmd }, stateDir);
  record(proc);
  const url = `http://127.0.0.1:${port}`;
  // Livy's start runs `spark-submit --version` first: 93 s of it at load average 18 on the 2 cores, so the
  // wait is long; a Livy that exits fails at once with its log.
  await waitUntil(
    "livy",
    async () => {
      const res = await fetch(`${url}/version`, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      return res.ok;
    },
    { timeoutMs: 300_000, proc, intervalMs: 250 },
  );
  return { url, python: install.python, sparkHome: install.sparkHome };
}

async function startStandin(stateDir: string, record: (p: RunningProcess) => void): Promise<string> {
  const port = await freePort();
  const proc = startProcess(
    {
      name: "livy-standin",
      command: process.execPath,
      args: [join(REPO_ROOT, "test", "standin", "main.ts"), "--host", "127.0.0.1", "--port", String(port)],
    },
    stateDir,
  );
  record(proc);
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(
    "livy-standin",
    async () => {
      const res = await fetch(`${url}/version`, { signal: AbortSignal.timeout(1_000) });
      await res.body?.cancel();
      return res.ok;
    },
    // Node's start with type stripping alone took over 20 s at load average 44 (the whole up failed)
    { timeoutMs: 120_000, proc },
  );
  return url;
}

/**
 * Stops every process this test bed started and removes its state. The real node goes first and whole (its
 * cgroups killed, namespaces, veth, routes and cgroups removed, its slot released), then the other processes.
 */
export async function down(stateDir = defaultStateDir()): Promise<void> {
  const state = readState(stateDir);
  if (state) {
    if (state.network) await stopNode(state.network, state.processes, stateDir);
    // Reverse order: clients of the API server go before it, etcd last.
    for (const p of [...state.processes].reverse()) await stopProcess(p.pid);
  }
  rmSync(stateDir, { recursive: true, force: true });
}

/**
 * Imports an image archive (`docker save` format) into the real node's containerd, so that pods on it can use
 * the image without a registry (imagePullPolicy Never or IfNotPresent, under the name containerd shows:
 * `docker.io/library/x:tag` for `x:tag`).
 */
export async function importImageIntoNode(tar: string, stateDir = defaultStateDir()): Promise<void> {
  const state = readState(stateDir);
  if (!state?.node) throw new Error(`no test bed with a real node in ${stateDir}`);
  await importImage(state.node.containerdSock, tar);
}

function processByName(stateDir: string, name: string): { state: TestbedState; proc: RunningProcess } {
  const state = readState(stateDir);
  if (!state) throw new Error(`no test bed in ${stateDir}`);
  const proc = state.processes.find((p) => p.name === name);
  if (!proc) {
    const names = state.processes.map((p) => p.name).join(", ");
    throw new Error(`the test bed in ${stateDir} has no process ${name} (it has ${names})`);
  }
  return { state, proc };
}

/**
 * Stops one component of a running test bed (SIGTERM, then SIGKILL after `graceMs`), leaving the others
 * running: for fault tests (an API server outage). `startProcessByName` starts it again the same way.
 */
export async function stopProcessByName(
  stateDir: string,
  name: string,
  opts: { graceMs?: number } = {},
): Promise<RunningProcess> {
  const { proc } = processByName(stateDir, name);
  await stopProcess(proc.pid, opts.graceMs);
  return proc;
}

/**
 * Starts a stopped component again with the command line, environment and working directory it was first
 * started with (recorded in state.json), or with `args` instead of its recorded arguments; records the new
 * pid (and arguments). Refuses when it is still running or when state.json predates recorded specs.
 */
export function startProcessByName(
  stateDir: string,
  name: string,
  opts: { args?: string[] } = {},
): RunningProcess {
  const { state, proc } = processByName(stateDir, name);
  if (isAlive(proc.pid)) throw new Error(`${name} is still running (pid ${proc.pid})`);
  if (!proc.spec)
    throw new Error(`${name}: state.json has no command line for it (test bed started by an older version)`);
  const spec = opts.args ? { ...proc.spec, args: opts.args } : proc.spec;
  const started = startProcess(spec, stateDir);
  state.processes = state.processes.map((p) => (p.name === name ? started : p));
  saveState(stateDir, state);
  return started;
}

/** Stops a component and starts it again on the same command line (or with `args`); see startProcessByName. */
export async function restartProcess(
  stateDir: string,
  name: string,
  opts: { args?: string[]; graceMs?: number } = {},
): Promise<RunningProcess> {
  await stopProcessByName(stateDir, name, opts);
  return startProcessByName(stateDir, name, opts);
}

export function status(stateDir = defaultStateDir()): string {
  const state = readState(stateDir);
  if (!state) return "down";
  return state.processes
    .map((p) => `${p.name.padEnd(24)} pid ${p.pid} ${isAlive(p.pid) ? "running" : "DEAD"}`)
    .join("\n");
}

export function envLines(state: TestbedState): string {
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  const lines = [
    `export KUBECONFIG=${q(state.kubeconfig)}`,
    `export PATH=${q(state.binDirs.join(":"))}:"$PATH"`,
    `export LIVY_STANDIN_URL=${q(state.standinUrl)}`,
  ];
  if (state.livyUrl) lines.push(`export LIVY_URL=${q(state.livyUrl)}`);
  if (state.sparkHome) lines.push(`export SPARK_HOME=${q(state.sparkHome)}`);
  if (state.python) lines.push(`export LIVY_TESTBED_PYTHON=${q(state.python)}`);
  if (state.node) {
    const n = state.node;
    lines.push(
      `export LIVY_TESTBED_NODE=${q(n.name)}`,
      `export LIVY_TESTBED_NODE_IP=${q(n.nodeIp)}`,
      `export LIVY_TESTBED_APISERVER_IP=${q(n.hostIp)}`,
      `export LIVY_TESTBED_POD_CIDR=${q(n.podCidr)}`,
      `export LIVY_TESTBED_SERVICE_CIDR=${q(n.serviceCidr)}`,
      `export LIVY_TESTBED_DNS_IP=${q(n.dnsServiceIp)}`,
      `export LIVY_TESTBED_CONTAINERD_SOCK=${q(n.containerdSock)}`,
    );
  }
  return lines.join("\n");
}
