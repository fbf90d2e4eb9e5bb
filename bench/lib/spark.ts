/**
 * What the interactive benchmarks need from Spark and Livy: a Livy server of their own (real Apache Livy
 * from the test bed's cache, local mode, nothing else started: no control plane or stand-in competing for
 * the cores), spark-submit runs with the same Spark configuration as that server's sessions, and input data
 * generated deterministically into a cache outside the repository.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { ensureLivyInstall, livyServerCommand, waitForLivy } from "../../test/testbed/livy.ts";
import { freePort, startProcess, stopProcess, tail } from "../../test/testbed/process.ts";
import { log } from "./bench.ts";
import { BENCH_DIR } from "./report.ts";

/**
 * What to undo when the benchmark is interrupted (Ctrl-C, kill): the Livy server with its drivers and a
 * running spark-submit live in process groups of their own and would outlive it.
 */
const cleanups = new Set<() => Promise<void>>();
let handlersInstalled = false;

function onInterrupt(fn: () => Promise<void>): () => void {
  if (!handlersInstalled) {
    handlersInstalled = true;
    for (const sig of ["SIGINT", "SIGTERM"] as const)
      process.once(sig, () => {
        log(`${sig}: stopping what the benchmark started`);
        void Promise.allSettled([...cleanups].map((f) => f())).then(() => process.exit(130));
      });
  }
  cleanups.add(fn);
  return () => {
    cleanups.delete(fn);
  };
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    /* already gone */
  }
}

export interface LivyServer {
  url: string;
  python: string;
  sparkHome: string;
  /** The spark-defaults.conf and log4j2 the server's sessions use; spark-submit runs read the same. */
  sparkConfDir: string;
  log: string;
  /** CPU seconds used so far by the server and everything under it (its sessions' drivers and REPLs). */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

/**
 * CPU seconds (user + system) used so far by the live processes of one process group, from /proc. The CPU
 * a path spends is a second measure beside wall time: it is far less inflated than wall time when other
 * work shares the cores.
 */
export function groupCpuSeconds(pgid: number): number {
  let ticks = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(f[2]) === pgid) ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* exited meanwhile */
    }
  }
  return ticks / 100; // USER_HZ is 100 on Linux
}

/** Starts one real Livy server on loopback for this benchmark; `stop()` ends it (and the drivers it started). */
export async function startLivyServer(): Promise<LivyServer> {
  const install = await ensureLivyInstall();
  const dir = mkdtempSync("/tmp/bench-interactive-");
  const port = await freePort();
  const workDir = join(dir, "livy");
  // a 10M-row run keeps one session for the whole run, with minutes between statements: no early expiry
  const cmd = livyServerCommand(install, { port, workDir, sessionTimeout: "4h" });
  const proc = startProcess({ name: "livy", ...cmd }, dir);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForLivy(url, 180_000);
  } catch (err) {
    await stopProcess(proc.pid);
    throw new Error(`livy: ${err instanceof Error ? err.message : String(err)}\n${await tail(proc.log)}`);
  }
  log(`Livy server ${url} (pid ${proc.pid}, logs ${proc.log})`);
  const stop = async () => {
    await stopProcess(proc.pid);
    rmSync(dir, { recursive: true, force: true });
  };
  const forget = onInterrupt(stop);
  return {
    url,
    python: install.python,
    sparkHome: install.sparkHome,
    sparkConfDir: join(workDir, "spark-conf"),
    log: proc.log,
    cpuSeconds: () => groupCpuSeconds(proc.pid),
    async stop() {
      forget();
      await stop();
    },
  };
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Seconds from spawn to the exit. */
  wallS: number;
  /** Seconds from spawn to the first stdout line starting with `watch`, when one was asked for and seen. */
  lineS: number | null;
  /** Epoch milliseconds at spawn (to place timestamps the child prints). */
  spawnedAtMs: number;
  /** With `cpu`: user + system CPU seconds of the command and every descendant it waited for. */
  cpuS: number | null;
}

/**
 * Runs a command to its end, timing the arrival of one stdout line (`watch`) as well as the exit. The child
 * gets its own process group, so that a timeout kills spark-submit's JVM and the Python driver under it.
 */
export function exec(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; watch?: string; timeoutMs: number; cpu?: boolean },
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const spawnedAtMs = Date.now();
    const t0 = performance.now();
    // bash's `times` prints the CPU its waited-for children used (rusage accumulates up the tree as each
    // process reaps its children: spark-submit's JVM waits for its Python driver)
    const [file, argv] = opts.cpu
      ? ["bash", ["-c", '"$@"; rc=$?; times >&2; exit $rc', "bash", cmd, ...args]]
      : [cmd, args];
    const child = spawn(file, argv, {
      env: opts.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    let lineS: number | null = null;
    const forget = onInterrupt(async () => killGroup(child.pid));
    const timer = setTimeout(() => {
      forget();
      killGroup(child.pid);
      reject(new Error(`${cmd} did not finish within ${opts.timeoutMs} ms:\n${stderr.slice(-3000)}`));
    }, opts.timeoutMs);
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      if (opts.watch && lineS === null) {
        const at = stdout.indexOf(opts.watch);
        if (at >= 0 && (at === 0 || stdout[at - 1] === "\n") && stdout.indexOf("\n", at) > 0)
          lineS = (performance.now() - t0) / 1000;
      }
    });
    child.stderr.on("data", (d: Buffer) => {
      // keep the tail only: Spark logs a lot at INFO
      stderr = (stderr + d.toString()).slice(-20_000);
    });
    child.on("error", (err) => {
      forget();
      clearTimeout(timer);
      reject(err);
    });
    child.on("exit", (code) => {
      forget();
      clearTimeout(timer);
      const wallS = (performance.now() - t0) / 1000;
      resolve({
        code,
        stdout,
        stderr,
        wallS,
        lineS,
        spawnedAtMs,
        cpuS: opts.cpu ? childrenCpu(stderr) : null,
      });
    });
  });
}

/** The children line of bash's `times` ("0m12.340s 0m1.020s"), the last line it printed. */
function childrenCpu(stderr: string): number | null {
  const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(stderr);
  if (!m) return null;
  return Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]);
}

/** Where generated input lives: outside the repository, kept between runs (BENCH_DATA_DIR overrides). */
export function dataDir(): string {
  const base = process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache");
  const dir = process.env.BENCH_DATA_DIR ?? join(base, "livy-operator", "bench-data");
  mkdirSync(dir, { recursive: true });
  return dir;
}

export interface DataFile {
  path: string;
  bytes: number;
  sha256: string;
  /** Seconds it took to generate in this run; null when the cached file was used. */
  generatedS: number | null;
}

async function sha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/**
 * A file written by `python <script> <args...> <out>`-style generators, cached by name. The name carries a
 * hash of the generator's source, so that a changed generator never reuses stale data. The SHA-256 of the
 * bytes is kept beside the file and reported, so that runs on different days can be shown to read the same
 * input.
 */
export async function ensureData(
  python: string,
  script: string,
  name: string,
  argv: (out: string) => string[],
): Promise<DataFile> {
  const source = readFileSync(join(BENCH_DIR, "python", script));
  const gen = createHash("sha256").update(source).digest("hex").slice(0, 8);
  const path = join(dataDir(), `${name}-g${gen}.csv`);
  const sumFile = `${path}.sha256`;
  if (existsSync(path) && existsSync(sumFile)) {
    const sum = readFileSync(sumFile, "utf8").trim();
    return { path, bytes: statSync(path).size, sha256: sum, generatedS: null };
  }
  log(`generating ${path}`);
  const t0 = performance.now();
  const tmp = `${path}.tmp`;
  const r = await exec(python, [join(BENCH_DIR, "python", script), ...argv(tmp)], { timeoutMs: 1_800_000 });
  if (r.code !== 0) throw new Error(`${script} failed (exit ${r.code}): ${r.stderr}`);
  const sum = await sha256(tmp);
  renameSync(tmp, path);
  writeFileSync(sumFile, `${sum}\n`);
  const generatedS = (performance.now() - t0) / 1000;
  const { size } = statSync(path);
  log(
    `generated ${path}: ${(size / 1e6).toFixed(1)} MB in ${generatedS.toFixed(1)} s, sha256 ${sum.slice(0, 16)}…`,
  );
  return { path, bytes: size, sha256: sum, generatedS };
}

/** The environment spark-submit runs in: the Livy server's Spark, Python and Spark configuration. */
export function submitEnv(livy: LivyServer): NodeJS.ProcessEnv {
  return {
    ...process.env,
    SPARK_HOME: livy.sparkHome,
    SPARK_CONF_DIR: livy.sparkConfDir,
    SPARK_LOCAL_IP: "127.0.0.1",
    PYSPARK_PYTHON: livy.python,
    PYSPARK_DRIVER_PYTHON: livy.python,
  };
}
