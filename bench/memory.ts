/**
 * memory: where the operator's memory goes, by component, and whether a reconcile pass costs more with
 * more LivySessions; a baseline commit and HEAD side by side in one run. No test bed: each measurement is
 * a process of its own (bench/lib/memory-child.mjs) running the compiled operator (as the image does) with
 * its caches filled, through its own informers, from an in-process list of N LivySessions and the objects
 * the operator keeps for each (Deployment, Service, ConfigMap, Pod, as the API server returns them, with
 * managedFields and status). Figures are V8's used heap after full GCs (load-insensitive) and CPU
 * microseconds per pass (observe from the caches + decide, the Livy answer given: no I/O); and the resident
 * set after `--churn` watch events (default 30,000) replayed into the filled caches, no GC forced, each
 * commit with the node flags of its image's entry point (Dockerfile) and HEAD also without them.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { type Args, type BenchBody, log } from "./lib/bench.ts";
import { buildDirOf, buildOperator, entryFlags } from "./lib/operator.ts";
import { BENCH_DIR, type Goal, marginBelow, type Table } from "./lib/report.ts";
import { round } from "./lib/stats.ts";

interface Child {
  n: number;
  kinds: string;
  base: { rss: number; heapUsed: number };
  modules: { rss: number; heapUsed: number };
  filled: { rss: number; heapUsed: number };
  passUs: number | null;
  passWallUs: number | null;
  passes: number;
  /** After `--churn` watch events, no GC forced (MiB). */
  churned: { events: number; rss: number; peakRss: number; heapTotal: number; heapUsed: number } | null;
}

const KINDS = ["livysessions", "deployments", "services", "configmaps", "pods"] as const;

async function child(
  commit: string,
  n: number,
  kinds: string,
  flags: string[] = [],
  churn = 0,
): Promise<Child> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      ...flags,
      "--expose-gc",
      join(BENCH_DIR, "lib", "memory-child.mjs"),
      buildDirOf(commit),
      String(n),
      kinds,
      String(churn),
    ],
    { maxBuffer: 16 << 20 },
  );
  return JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as Child;
}

export async function memory(args: Args): Promise<BenchBody> {
  const baseline = args.str("baseline", "");
  const sizes = args
    .str("sizes", "1000,10000")
    .split(",")
    .map((s) => Number(s.trim()));
  const revs = baseline ? [baseline, "HEAD"] : ["HEAD"];
  const commits: string[] = [];
  for (const r of revs) commits.push(await buildOperator(r === "HEAD" ? undefined : r));
  const churn = args.num("churn", 30_000);
  const flags: string[][] = [];
  for (const c of commits) flags.push(await entryFlags(c));
  const all = new Map<string, Child>();
  for (const n of sizes)
    for (const [i, r] of revs.entries()) {
      for (const k of ["all", ...KINDS]) {
        log(`${commits[i]}: ${n} LivySessions, ${k}`);
        all.set(`${r} ${n} ${k}`, await child(commits[i] ?? r, n, k));
      }
      // resident memory after bursts of watch events: as shipped (the image's node flags), and for HEAD
      // also without them, side by side
      const variants: Array<[string, string[]]> = [["shipped", flags[i] ?? []]];
      if (r === "HEAD" && flags[i]?.length) variants.push(["no flags", []]);
      for (const [v, f] of variants) {
        log(`${commits[i]}: ${n} LivySessions, ${churn} watch events, ${v} (${f.join(" ") || "no flags"})`);
        all.set(`${r} ${n} churn ${v}`, await child(commits[i] ?? r, n, "all", f, churn));
      }
    }
  const get = (r: string, n: number, k: string) => all.get(`${r} ${n} ${k}`) as Child;
  const cacheMiB = (c: Child) => round(c.filled.heapUsed - c.modules.heapUsed);
  const tables: Table[] = [];
  for (const n of sizes) {
    const rows: Array<Array<string | number>> = [
      [
        "Node.js itself (RSS / heap)",
        ...revs.map((r) => `${get(r, n, "all").base.rss} / ${get(r, n, "all").base.heapUsed}`),
      ],
      [
        "the operator's modules loaded (RSS / heap)",
        ...revs.map((r) => `${get(r, n, "all").modules.rss} / ${get(r, n, "all").modules.heapUsed}`),
      ],
      ...KINDS.map((k) => [`cache: ${k} (heap)`, ...revs.map((r) => cacheMiB(get(r, n, k)))]),
      ["all caches together (heap)", ...revs.map((r) => cacheMiB(get(r, n, "all")))],
      [
        "heap per LivySession, all caches (KiB)",
        ...revs.map((r) => round((cacheMiB(get(r, n, "all")) * 1024) / n)),
      ],
    ];
    if (revs.length === 2) for (const row of rows) row.push(ratio(row[1], row[2]));
    tables.push({
      title: `Memory by component at ${n} LivySessions (MiB; V8 used heap after GC)`,
      columns: ["component", ...commits, ...(revs.length === 2 ? [`ratio ${commits[1]}/${commits[0]}`] : [])],
      rows,
    });
  }
  const passRows = sizes.map((n) => [
    n,
    ...revs.flatMap((r) => [get(r, n, "all").passUs ?? "", get(r, n, "all").passWallUs ?? ""]),
  ]);
  tables.push({
    title: "One reconcile pass without I/O (observe from the caches + decide): CPU µs and wall µs per pass",
    columns: ["LivySessions", ...commits.flatMap((c) => [`${c} CPU µs`, `${c} wall µs`])],
    rows: passRows,
  });
  const churnRows: Array<Array<string | number>> = [];
  for (const n of sizes)
    for (const [i, r] of revs.entries())
      for (const v of ["shipped", "no flags"]) {
        const c = all.get(`${r} ${n} churn ${v}`)?.churned;
        if (!c) continue;
        const f = v === "shipped" ? flags[i]?.join(" ") || "none" : "none";
        churnRows.push([
          n,
          `${commits[i]} ${v === "shipped" ? "as shipped" : "without them"}`,
          f,
          c.rss,
          c.peakRss,
          c.heapTotal,
          c.heapUsed,
        ]);
      }
  tables.push({
    title: `Resident memory after ${churn} watch events (MODIFIED, each decoded from its JSON), no GC forced (MiB)`,
    columns: [
      "LivySessions",
      "operator",
      "node flags (Dockerfile ENTRYPOINT)",
      "RSS",
      "peak RSS (VmHWM)",
      "V8 heap total",
      "V8 heap used",
    ],
    rows: churnRows,
  });
  const head = (n: number) => get("HEAD", n, "all");
  const [small, large] = [sizes[0] ?? 1000, sizes[sizes.length - 1] ?? 10000];
  const growth = (head(large).passUs ?? 0) / Math.max(1, head(small).passUs ?? 1);
  const goals: Goal[] = [
    {
      goal: "no per-pass cost that grows with N",
      target: `CPU per pass at ${large} within 1.5x of at ${small}`,
      measured: `${head(small).passUs} µs → ${head(large).passUs} µs (${growth.toFixed(2)}x)`,
      met: growth <= 1.5,
      margin: marginBelow(growth, 1.5, "x"),
    },
  ];
  return {
    params: { sizes, baseline: baseline || null, commits, churn, nodeFlags: flags },
    results: Object.fromEntries(all),
    goals,
    tables,
    notes: [
      "Heap figures are V8's used heap after three full GCs, in a process that loaded only the compiled operator (no TypeScript loader); the RSS of these processes also holds the generator's garbage and is not the operator's: the scale benchmark measures the running operator's RSS.",
      "A component's figure is the heap with only that kind's objects served (the others empty) minus the heap after loading the modules.",
      "The resident-memory rows replay watch events of 20 objects of each kind round robin into the filled caches through the informers' own handlers (the watch decoder's JSON.parse included), then read /proc/self/status: the process's RSS includes the generator's garbage of the fill, alike in both columns.",
    ],
  };
}

function ratio(a: string | number | undefined, b: string | number | undefined): string | number {
  const x = Number(a);
  const y = Number(b);
  return Number.isFinite(x) && Number.isFinite(y) && x ? round(y / x, 2) : "";
}
