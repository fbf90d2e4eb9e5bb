/** What every benchmark reports: the machine, its load while the benchmark ran, tables, goals, JSON. */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, freemem, loadavg, release, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const REPO_ROOT = dirname(BENCH_DIR);

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  freeMemoryGiB: number;
  kernel: string;
  node: string;
  java: string;
  spark: string;
  livy: string;
  pylivy: string;
  /** HEAD when the run began (gitAtStart). */
  gitCommit: string;
  /** Uncommitted changes under src/, test/standin, test/testbed or bench/ when the run began. */
  gitDirty: boolean;
}

export interface LoadSample {
  at: string;
  load1: number;
  load5: number;
  load15: number;
}

export interface Goal {
  goal: string;
  target: string;
  measured: string;
  /** null when it could not be measured in this run. */
  met: boolean | null;
  /** How far from the target, in words ("2.3x better than needed", "missed by 40 ms"). */
  margin: string;
}

export interface Table {
  title: string;
  columns: string[];
  rows: Array<Array<string | number>>;
}

export interface BenchOutput {
  name: string;
  command: string;
  startedAt: string;
  finishedAt: string;
  durationS: number;
  machine: MachineInfo;
  load: { start: LoadSample; end: LoadSample; max1: number; samples: LoadSample[] };
  params: Record<string, unknown>;
  results: Record<string, unknown>;
  goals: Goal[];
  tables: Table[];
  notes: string[];
}

async function out(
  cmd: string,
  args: string[],
  opts: { stderr?: boolean; cwd?: string } = {},
): Promise<string> {
  try {
    const r = await run(cmd, args, { timeout: 60_000, ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    return (opts.stderr ? r.stderr : r.stdout).trim();
  } catch (err) {
    return `unknown (${err instanceof Error ? err.message.split("\n")[0] : String(err)})`;
  }
}

export function loadSample(): LoadSample {
  const [load1 = 0, load5 = 0, load15 = 0] = loadavg();
  return { at: new Date().toISOString(), load1, load5, load15 };
}

let atStart: Promise<{ gitCommit: string; gitDirty: boolean }> | undefined;

/**
 * The commit (and whether what the benchmarks run had uncommitted changes) when the run began: the first
 * call reads it (bench/run.ts calls this before the benchmark starts), every later call returns the same.
 * A run takes minutes to hours while main moves under the shared work tree; the commit at its end is not
 * what it measured. The one home for a run's commit: the report and buildOperator() both use it.
 */
export function gitAtStart(): Promise<{ gitCommit: string; gitDirty: boolean }> {
  atStart ??= (async () => {
    // others edit the shared work tree too: only uncommitted changes to what the benchmarks run count
    const status = await out(
      "git",
      ["status", "--porcelain", "--untracked-files=no", "--", "src", "test/standin", "test/testbed", "bench"],
      { cwd: REPO_ROOT },
    );
    return {
      gitCommit: await out("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO_ROOT }),
      gitDirty: status.length > 0 && !status.startsWith("unknown"),
    };
  })();
  return atStart;
}

/** The machine, with the versions of what the benchmarks run on (python and livyUrl from the test bed). */
export async function machineInfo(
  env: { python?: string | null; livyUrl?: string | null } = {},
): Promise<MachineInfo> {
  const javaOut = await out("java", ["-version"], { stderr: true });
  const python = env.python ?? null;
  const spark = python
    ? await out(python, ["-c", "import pyspark; print(pyspark.__version__)"])
    : "not measured (no test bed python)";
  const pylivy = python
    ? await out(python, ["-c", "import importlib.metadata as m; print(m.version('livy'))"])
    : "not measured";
  let livy = "not used";
  if (env.livyUrl) {
    try {
      const v = (await (await fetch(`${env.livyUrl}/version`)).json()) as { version?: string };
      livy = v.version ?? "unknown";
    } catch {
      livy = "unreachable";
    }
  }
  return {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    freeMemoryGiB: Math.round((freemem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    java: javaOut.split("\n")[0] ?? javaOut,
    spark,
    livy,
    pylivy,
    ...(await gitAtStart()),
  };
}

/** Samples the load average every 5 s while a benchmark runs. */
export class LoadMonitor {
  readonly samples: LoadSample[] = [loadSample()];
  readonly #timer: NodeJS.Timeout;
  constructor() {
    this.#timer = setInterval(() => this.samples.push(loadSample()), 5_000);
    this.#timer.unref();
  }
  stop(): { start: LoadSample; end: LoadSample; max1: number; samples: LoadSample[] } {
    clearInterval(this.#timer);
    const end = loadSample();
    this.samples.push(end);
    const start = this.samples[0] ?? end;
    return { start, end, max1: Math.max(...this.samples.map((s) => s.load1)), samples: this.samples };
  }
}

const cell = (v: string | number): string =>
  typeof v === "number" ? (Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000)) : v;

/** A Markdown pipe table (what RESULTS.md holds), padded for the terminal. */
export function markdownTable(t: Table): string {
  const rows = [t.columns, ...t.rows.map((r) => r.map(cell))];
  const widths = t.columns.map((_, i) => Math.max(3, ...rows.map((r) => String(r[i] ?? "").length)));
  const line = (r: Array<string | number>) =>
    `| ${r.map((c, i) => String(c ?? "").padEnd(widths[i] ?? 3)).join(" | ")} |`;
  return [
    `**${t.title}**`,
    "",
    line(t.columns),
    `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`,
    ...rows.slice(1).map(line),
  ].join("\n");
}

export function goalsTable(goals: Goal[]): Table {
  return {
    title: "Goals",
    columns: ["goal", "target", "measured", "met", "margin"],
    rows: goals.map((g) => [
      g.goal,
      g.target,
      g.measured,
      g.met === null ? "n/a" : g.met ? "met" : "MISSED",
      g.margin,
    ]),
  };
}

export function render(o: BenchOutput): string {
  const m = o.machine;
  const head = [
    `## ${o.name}`,
    "",
    `Command: \`${o.command}\``,
    "",
    `Run ${o.startedAt} (${o.durationS.toFixed(0)} s) on ${m.nproc} × ${m.cpuModel}, ${m.memoryGiB} GiB; ` +
      `load average ${o.load.start.load1.toFixed(2)} at the start, ${o.load.end.load1.toFixed(2)} at the end, ` +
      `${o.load.max1.toFixed(2)} at most (1-minute); commit ${m.gitCommit}${m.gitDirty ? " (dirty)" : ""}.`,
    "",
  ];
  const body = [...o.tables, goalsTable(o.goals)].map(markdownTable).join("\n\n");
  const notes = o.notes.length ? `\n\n${o.notes.map((n) => `- ${n}`).join("\n")}` : "";
  return `${head.join("\n")}${body}${notes}\n`;
}

/**
 * Writes results/NAME.json and .md. A result file is a record (RESULTS.md quotes and links it): a run never
 * overwrites one. When NAME is taken (a second run without --out, or with the same --out), the files are
 * NAME-<start time, UTC> instead, and o.name says so.
 */
export function writeResult(o: BenchOutput, dir = join(BENCH_DIR, "results")): string {
  mkdirSync(dir, { recursive: true });
  if (existsSync(join(dir, `${o.name}.json`)) || existsSync(join(dir, `${o.name}.md`)))
    o.name = `${o.name}-${o.startedAt.replace(/[-:]/g, "").slice(0, 15)}`;
  const file = join(dir, `${o.name}.json`);
  writeFileSync(file, `${JSON.stringify(o, null, 2)}\n`);
  writeFileSync(join(dir, `${o.name}.md`), render(o));
  return file;
}

/** "3.2x the target" / "missed by 12 ms" style wording for a lower-is-better figure. */
export function marginBelow(measured: number, limit: number, unit: string): string {
  if (!Number.isFinite(measured)) return "not measured";
  if (measured <= limit) {
    const headroom = limit - measured;
    const factor = measured > 0 ? limit / measured : Number.POSITIVE_INFINITY;
    return `${fmt(headroom)} ${unit} under the limit (${Number.isFinite(factor) ? `${factor.toFixed(1)}x` : "∞"} headroom)`;
  }
  return `missed by ${fmt(measured - limit)} ${unit} (${(measured / limit).toFixed(2)}x the limit)`;
}

/** Wording for a higher-is-better figure. */
export function marginAbove(measured: number, floor: number, unit: string): string {
  if (!Number.isFinite(measured)) return "not measured";
  if (measured >= floor)
    return `${fmt(measured - floor)} ${unit} above the floor (${(measured / floor).toFixed(2)}x)`;
  return `missed by ${fmt(floor - measured)} ${unit} (${((measured / floor) * 100).toFixed(0)}% of the floor)`;
}

export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
}
