/** The real operator process, started by a benchmark against its test bed, with request counting. */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { stripTypeScriptTypes } from "node:module";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { log } from "./bench.ts";
import { memoryCgroup } from "./pod-memory.ts";
import { BENCH_DIR, gitAtStart, REPO_ROOT } from "./report.ts";

const BUILD_DIR = join(BENCH_DIR, ".build");
const BUILD_SRC = join(BENCH_DIR, ".build-src");
const builds = new Map<string, Promise<string>>();

/** Where the operator of `commit` (as buildOperator returns it) is compiled: bench/.build-<commit>. */
export function buildDirOf(commit: string): string {
  return `${BUILD_DIR}-${commit.replace(/[^\w.-]/g, "_")}`;
}

/**
 * The operator as it ships (the image runs `node [flags] dist/operator/main.js`: entryFlags), from the commit the run
 * began at (gitAtStart, the one the report names): `git archive <commit>` of src/ and the tsconfigs into bench/.build-src (others edit the shared work tree while benchmarks
 * run), compiled with tsconfig.build.json into bench/.build-<commit>. So no TypeScript stripping (its compiler's
 * memory and start time) is measured, and the result names the commit it measured. The request counter is
 * stripped to plain JavaScript beside it for the same reason. Returns the commit. `rev` builds another
 * commit (a baseline measured in the same run). A commit's build, once complete, is reused, never replaced
 * (another benchmark may be running it).
 */
export function buildOperator(rev?: string): Promise<string> {
  const key = rev ?? "@start";
  let built = builds.get(key);
  if (built) return built;
  built = (async () => {
    const run = promisify(execFile);
    // no rev: the commit the run began at (the one its report names), not HEAD as it is now
    const commit =
      rev === undefined
        ? (await gitAtStart()).gitCommit
        : (await run("git", ["rev-parse", "--short", rev], { cwd: REPO_ROOT })).stdout.trim();
    const out = buildDirOf(commit);
    const done = join(out, ".complete");
    if (existsSync(done)) return commit;
    const src = `${BUILD_SRC}-${commit}`;
    log(`compiling the operator of commit ${commit} (git archive, tsc -p tsconfig.build.json) into ${out}`);
    rmSync(src, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
    mkdirSync(src, { recursive: true });
    await run(
      "sh",
      ["-c", `git archive ${commit} src tsconfig.json tsconfig.build.json | tar -x -C '${src}'`],
      {
        cwd: REPO_ROOT,
        maxBuffer: 64 << 20,
      },
    );
    await run(
      process.execPath,
      [
        join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc"),
        "-p",
        join(src, "tsconfig.build.json"),
        "--outDir",
        out,
        "--declaration",
        "false",
        "--sourceMap",
        "false",
      ],
      { cwd: src, maxBuffer: 16 << 20 },
    );
    // the copy would otherwise be type-checked again by the repository's tsconfig (it includes bench/)
    rmSync(src, { recursive: true, force: true });
    const counter = readFileSync(join(BENCH_DIR, "lib", "count-requests.ts"), "utf8");
    writeFileSync(join(out, "count-requests.mjs"), stripTypeScriptTypes(counter));
    writeFileSync(done, `${commit}\n`);
    return commit;
  })();
  builds.set(key, built);
  return built;
}

/**
 * The node flags the image's entry point gives the operator at `commit` (its Dockerfile's `ENTRYPOINT
 * ["node", <flags>, "dist/operator/main.js"]`), so that the benchmark starts it as it ships (a baseline
 * with its own commit's flags).
 */
export async function entryFlags(commit: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)("git", ["show", `${commit}:Dockerfile`], { cwd: REPO_ROOT });
  const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(stdout)?.[1];
  const argv = line ? (JSON.parse(line) as string[]) : [];
  const at = argv.indexOf("dist/operator/main.js");
  if (argv[0] !== "node" || at < 0)
    throw new Error(`${commit}: Dockerfile ENTRYPOINT is not node … dist/operator/main.js`);
  return argv.slice(1, at);
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Operator processes this benchmark started and that are still running. */
const children = new Set<ChildProcess>();
let reaperInstalled = false;

/**
 * A benchmark stopped by a signal (or ending on an error before its own `stop()`) must not leave its
 * operator running: it would go on reconciling the test bed's objects and hold their finalizers (a 10,000-session
 * run stopped by hand left one). SIGTERM to each on the benchmark's exit, and on SIGINT/SIGTERM exit.
 */
function reapOnExit(proc: ChildProcess): void {
  if (!reaperInstalled) {
    reaperInstalled = true;
    process.on("exit", () => {
      for (const c of children) c.kill("SIGTERM");
    });
    for (const sig of ["SIGINT", "SIGTERM"] as const)
      process.once(sig, () => {
        log(`${sig}: stopping ${children.size} operator process(es)`);
        process.exit(sig === "SIGINT" ? 130 : 143);
      });
  }
  children.add(proc);
  proc.once("exit", () => children.delete(proc));
}

export interface OperatorOptions {
  kubeconfig: string;
  kubeOrigin: string;
  serverUrlTemplate: string;
  logDir: string;
  name: string;
  sessionPollIntervalMs?: number;
  concurrency?: number;
  extraArgs?: string[];
  /** Write a V8 CPU profile (node --cpu-prof) into this directory on exit. */
  cpuProfDir?: string;
  logLevel?: string;
  /** "js" (default): the last commit's operator compiled, as shipped; "ts": the work tree's src/ through type stripping. */
  mode?: "js" | "ts";
  /** With mode "js": the commit to run (default: the commit the run began at), e.g. a baseline measured in the same run. */
  rev?: string;
  /** Run the operator in a memory cgroup of this many bytes, as its pod's limit does (pod-memory.ts). */
  memoryLimitBytes?: number;
  /** Also count requests by the object they name (count-requests.ts `byObject`). */
  countByObject?: boolean;
}

export interface RequestCounts {
  total: number;
  counts: Record<string, number>;
  /** Request → response headers, per route, as the operator saw it. */
  latency: Record<string, { sumMs: number; n: number; maxMs: number }>;
  /** With `countByObject`: counts by `<route key> <namespace/name | Livy session id or name>`. */
  byObject?: Record<string, number>;
}

export class Operator {
  readonly proc: ChildProcess;
  readonly port: number;
  readonly countPort: number;
  readonly log: string;
  /** The commit whose operator runs ("work tree" for mode ts). */
  commit = "work tree";
  /** The memory cgroup limit it runs under (its pod's), if any. */
  memoryLimitBytes: number | undefined;
  readonly #exited: Promise<number | null>;

  private constructor(proc: ChildProcess, port: number, countPort: number, log: string) {
    this.proc = proc;
    this.port = port;
    this.countPort = countPort;
    this.log = log;
    this.#exited = new Promise((resolve) => proc.once("exit", (code) => resolve(code)));
  }

  static async start(o: OperatorOptions): Promise<Operator> {
    const port = await freePort();
    const countPort = await freePort();
    mkdirSync(o.logDir, { recursive: true });
    const log = join(o.logDir, `operator-${o.name}-${Date.now()}.log`);
    const fd = openSync(log, "a");
    const mode = o.mode ?? "js";
    const commit = mode === "js" ? await buildOperator(o.rev) : "work tree";
    const dir = buildDirOf(commit);
    const entry =
      mode === "js" ? join(dir, "operator", "main.js") : join(REPO_ROOT, "src", "operator", "main.ts");
    const counter =
      mode === "js" ? join(dir, "count-requests.mjs") : join(BENCH_DIR, "lib", "count-requests.ts");
    // the counter is the benchmark's, whichever commit's operator it counts: a cached build keeps an older one
    if (mode === "js")
      writeFileSync(
        counter,
        stripTypeScriptTypes(readFileSync(join(BENCH_DIR, "lib", "count-requests.ts"), "utf8")),
      );
    const nodeArgs = [...(mode === "js" ? await entryFlags(commit) : []), "--import", counter];
    if (o.cpuProfDir) {
      mkdirSync(o.cpuProfDir, { recursive: true });
      nodeArgs.push("--cpu-prof", "--cpu-prof-dir", o.cpuProfDir);
    }
    const argv = [
      process.execPath,
      ...nodeArgs,
      entry,
      "--kubeconfig",
      o.kubeconfig,
      "--server-url-template",
      o.serverUrlTemplate,
      "--http-port",
      String(port),
      "--http-host",
      "127.0.0.1",
      "--session-poll-interval-ms",
      String(o.sessionPollIntervalMs ?? 5_000),
      "--concurrency",
      String(o.concurrency ?? 16),
      "--log-level",
      o.logLevel ?? "info",
      ...(o.extraArgs ?? []),
    ];
    const cgroup =
      o.memoryLimitBytes !== undefined
        ? memoryCgroup(`livy-bench-operator-${port}`, o.memoryLimitBytes)
        : undefined;
    const run = cgroup ? cgroup.wrap(argv) : { command: argv[0] ?? "", args: argv.slice(1) };
    const proc = spawn(run.command, run.args, {
      stdio: ["ignore", fd, fd],
      env: {
        ...process.env,
        BENCH_COUNT_PORT: String(countPort),
        BENCH_KUBE_ORIGIN: o.kubeOrigin,
        ...(o.countByObject ? { BENCH_COUNT_BY_OBJECT: "1" } : {}),
      },
    });
    if (cgroup) proc.once("exit", () => cgroup.dispose());
    closeSync(fd);
    reapOnExit(proc);
    const op = new Operator(proc, port, countPort, log);
    op.commit = commit;
    op.memoryLimitBytes = cgroup?.limitBytes;
    // loading its modules alone took 6-30 s at load average 20-28 on 2 cores (test/faults/helpers.ts)
    const deadline = Date.now() + 180_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`operator exited with ${proc.exitCode}:\n${op.logTail()}`);
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
      if (res?.status === 200) break;
      if (Date.now() > deadline) {
        // not left running: it would go on reconciling what the next run creates
        proc.kill("SIGKILL");
        throw new Error(`operator not ready within 180 s:\n${op.logTail()}`);
      }
      await sleep(100);
    }
    return op;
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  logTail(chars = 3000): string {
    try {
      return readFileSync(this.log, "utf8").slice(-chars);
    } catch {
      return "";
    }
  }

  async metrics(): Promise<string> {
    return await (await fetch(`http://127.0.0.1:${this.port}/metrics`)).text();
  }

  async requests(): Promise<RequestCounts> {
    return (await (await fetch(`http://127.0.0.1:${this.countPort}/`)).json()) as RequestCounts;
  }

  /** VmHWM (peak resident set) and VmRSS of the operator process, in MiB. */
  memory(): { peakRssMiB: number; rssMiB: number } {
    const status = readFileSync(`/proc/${this.pid}/status`, "utf8");
    const kb = (key: string) =>
      Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
    return { peakRssMiB: kb("VmHWM") / 1024, rssMiB: kb("VmRSS") / 1024 };
  }

  /** CPU time the operator process used so far (user + system), in seconds. */
  cpuSeconds(): number {
    const stat = readFileSync(`/proc/${this.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[11] and [12] are utime and stime (the 14th and 15th of the whole line), in clock ticks of 1/100 s
    return (Number(fields[11]) + Number(fields[12])) / 100;
  }

  /** SIGTERM and wait (the CPU profile, if any, is written on this exit). */
  async stop(): Promise<number | null> {
    if (this.proc.exitCode !== null) return this.proc.exitCode;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 30_000);
    const code = await this.#exited;
    clearTimeout(timer);
    return code;
  }
}

/** Sum of a Prometheus sample over the series whose labels include `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+([^\s]+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const lbl = m[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => lbl.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/** controller_runtime_reconcile_total by result. */
export interface ReconcileTotals {
  success: number;
  error: number;
  requeue: number;
  requeue_after: number;
}

export function reconcileTotals(text: string): ReconcileTotals {
  const v = (result: string) => metricValue(text, "controller_runtime_reconcile_total", { result });
  return {
    success: v("success"),
    error: v("error"),
    requeue: v("requeue"),
    requeue_after: v("requeue_after"),
  };
}
