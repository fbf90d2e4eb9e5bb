#!/usr/bin/env node
/**
 * npm run bench -- <name> [--option value ...]
 * Each benchmark prints its tables (Markdown) and writes bench/results/<name>.json and .md (or <out>.json
 * and .md with `--out <out>`, for a variant of a benchmark kept beside its main run), never over an earlier
 * result: a name already taken gets the run's start time appended (report.ts writeResult).
 * Benchmarks report figures and goals met or missed; they never fail on a time (exit 1 only when a
 * benchmark could not run at all).
 */
import { Args, type BenchFn } from "./lib/bench.ts";
import { type BenchOutput, gitAtStart, LoadMonitor, machineInfo, render, writeResult } from "./lib/report.ts";

const BENCHES: Record<string, { what: string; load: () => Promise<BenchFn> }> = {
  interactive: {
    what: "a data-prep step: spark-submit each time vs statements in one warm Livy session (real Spark)",
    load: async () => (await import("./interactive.ts")).interactive,
  },
  coldstart: {
    what: "LivySession apply → first result, by stage (real Livy and the stand-in), and wake after idle",
    load: async () => (await import("./coldstart.ts")).coldstart,
  },
  warmstart: {
    what: "first statement after Ready vs warm, with the operator's warm-up on and off (real Livy)",
    load: async () => (await import("./warmstart.ts")).warmstart,
  },
  warmpool: {
    what: "a LivySession from a warm LivySessionPool vs a cold start on the real node: apply → Ready, → first result",
    load: async () => (await import("./warmpool.ts")).warmpool,
  },
  scale: {
    what: "1000 LivySessions on the stand-in: all Ready, requests, memory, idle-out, delete, leaks",
    load: async () => (await import("./scale.ts")).scale,
  },
  memory: {
    what: "the operator's memory by component and a pass's cost at N LivySessions (no test bed); --baseline REV",
    load: async () => (await import("./memory.ts")).memory,
  },
  dispatch: {
    what: "10,000 trivial statements over 16 stand-in sessions through the SessionPool",
    load: async () => (await import("./dispatch.ts")).dispatch,
  },
  node: {
    what: "the test bed's real node: up/down, daemons' RSS, pod create → Ready, cold build times",
    load: async () => (await import("./node.ts")).node,
  },
  realnode: {
    what: "the product on the real node: chart, images, real Livy on Spark; cold start and wake by phase, Livy pod RSS",
    load: async () => (await import("./realnode.ts")).realnode,
  },
  images: {
    what: "the operator and Livy server images: sizes (unpacked, tar, gzip), warm build step, --cold build",
    load: async () => (await import("./images.ts")).images,
  },
  gateway: {
    what: "the gateway: added latency on a Ready session vs direct, statements held during a wake, RSS at 1000 LivySessions",
    load: async () => (await import("./gateway.ts")).gateway,
  },
  "spark-k8s": {
    what: "Spark's kubernetes mode vs local mode on the real node: apply → first result, executor pod start",
    load: async () => (await import("./spark-k8s.ts")).sparkK8s,
  },
  client: {
    what: "trivial-statement round trip: this client vs pylivy vs a naive poller (real Livy); own overhead",
    load: async () => (await import("./client.ts")).client,
  },
};

const usage = `usage: npm run bench -- <name> [--option value ...]\n${Object.entries(BENCHES)
  .map(([n, b]) => `  ${n.padEnd(12)} ${b.what}`)
  .join("\n")}\nSee bench/RESULTS.md for each benchmark's options.`;

async function main(): Promise<number> {
  const [name, ...rest] = process.argv.slice(2);
  const bench = name ? BENCHES[name] : undefined;
  if (!name || !bench) {
    process.stderr.write(`${usage}\n`);
    return name === undefined || name === "--help" ? 0 : 2;
  }
  // --out NAME: write results/NAME.json (a variant beside the main run) instead of results/<name>.json
  const outAt = rest.indexOf("--out");
  const outName = outAt >= 0 ? rest[outAt + 1] : undefined;
  if (outAt >= 0) rest.splice(outAt, 2);
  if (outAt >= 0 && !outName) throw new Error("--out needs a name");
  const fn = await bench.load();
  const git = await gitAtStart(); // before the run: what it measures, whatever main does meanwhile
  process.stderr.write(`bench: commit ${git.gitCommit}${git.gitDirty ? " (dirty)" : ""}\n`);
  const load = new LoadMonitor();
  const started = new Date();
  const body = await fn(new Args(rest));
  const finished = new Date();
  const output: BenchOutput = {
    name: outName ?? name,
    command: `npm run bench -- ${[name, ...rest, ...(outName ? ["--out", outName] : [])].join(" ")}`,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationS: (finished.getTime() - started.getTime()) / 1000,
    machine: await machineInfo(body.env ?? {}),
    load: load.stop(),
    params: body.params,
    results: body.results,
    goals: body.goals,
    tables: body.tables,
    notes: body.notes,
  };
  process.stdout.write(`\n${render(output)}\n`);
  process.stdout.write(`written: ${writeResult(output)}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
