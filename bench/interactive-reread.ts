/**
 * interactive --mode reread: the first form of the interactive benchmark (issue 1), kept because it shows
 * the other end of the range: the same data-prep step (read a 1,000,000-row CSV, filter, group, count) run
 * N times (a) as a spark-submit job each time and (b) as statements in one warm Livy session, re-reading the
 * CSV in every statement. Same master (local[2]) and Spark settings: spark-submit reads the Livy server's
 * own spark-conf directory (spark-defaults.conf, log4j2) that its sessions use.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LivyClient } from "../src/livy/index.ts";
import { type Args, type BenchBody, log } from "./lib/bench.ts";
import { BENCH_DIR, fmt, marginAbove } from "./lib/report.ts";
import { dataDir, ensureData, exec, startLivyServer, submitEnv } from "./lib/spark.ts";
import { median, round, roundSummary, summarize } from "./lib/stats.ts";

interface PrepOutput {
  groups: Array<[string, string, number]>;
  stepSeconds: number;
}

function parsePrep(text: string): PrepOutput {
  const line = text.split("\n").find((l) => l.startsWith("PREP_RESULT "));
  if (!line) throw new Error(`no PREP_RESULT line in:\n${text.slice(-2000)}`);
  return JSON.parse(line.slice("PREP_RESULT ".length)) as PrepOutput;
}

export async function interactiveReread(args: Args): Promise<BenchBody> {
  const n = args.num("n", 7);
  const rows = args.num("rows", 1_000_000);
  const seed = args.num("seed", 42);
  const livy = await startLivyServer();
  const { python, sparkHome, url: livyUrl, sparkConfDir } = livy;
  const csv = await ensureData(python, "gen_csv.py", `prep-${rows}-seed${seed}`, (out) => [
    out,
    String(rows),
    String(seed),
  ]);
  const step = readFileSync(join(BENCH_DIR, "python", "prep_step.py"), "utf8");
  const literal = JSON.stringify(csv.path);

  // (a) the job users would spark-submit: a SparkSession header, then the very same step.
  const jobFile = join(dataDir(), "prep_job.py");
  writeFileSync(
    jobFile,
    `from pyspark.sql import SparkSession\nCSV_PATH = ${literal}\nspark = SparkSession.builder.appName("bench-prep").getOrCreate()\n${step}\nspark.stop()\n`,
  );
  const env = submitEnv(livy);
  const submitArgs = ["--master", "local[2]", "--name", "bench-prep", jobFile];

  // (b) one warm Livy session through our client.
  const client = new LivyClient({ baseUrl: livyUrl, timeoutMs: 120_000 });
  const name = `bench-interactive-${Date.now().toString(36)}`;
  log(`creating Livy session ${name} on ${livyUrl} (real Spark: tens of seconds)`);
  const t0 = performance.now();
  const created = await client.createSession({ kind: "pyspark", name });
  const session = client.session(created.id);
  await session.waitForIdle({ timeoutMs: 600_000 });
  const sessionStartS = (performance.now() - t0) / 1000;
  log(`session ${created.id} idle after ${sessionStartS.toFixed(1)} s`);
  const statementCode = `CSV_PATH = ${literal}\n${step}`;

  const submitS: number[] = [];
  const submitStepS: number[] = [];
  const stmtS: number[] = [];
  const stmtLivyS: number[] = [];
  const stmtStepS: number[] = [];
  const outputs: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      // alternate which path goes first so drifting load falls on both alike
      const order = i % 2 === 0 ? ["submit", "livy"] : ["livy", "submit"];
      for (const path of order) {
        if (path === "submit") {
          const s0 = performance.now();
          const r = await exec(join(sparkHome, "bin", "spark-submit"), submitArgs, {
            env,
            timeoutMs: 1_800_000,
          });
          const wall = (performance.now() - s0) / 1000;
          if (r.code !== 0) throw new Error(`spark-submit exited ${r.code}:\n${r.stderr.slice(-3000)}`);
          const out = parsePrep(r.stdout);
          submitS.push(wall);
          submitStepS.push(out.stepSeconds);
          outputs.push(JSON.stringify(out.groups));
          log(
            `run ${i + 1}/${n} spark-submit ${wall.toFixed(2)} s (step inside ${out.stepSeconds.toFixed(2)} s)`,
          );
        } else {
          const s0 = performance.now();
          const res = await session.run(statementCode, { timeoutMs: 600_000 });
          const wall = (performance.now() - s0) / 1000;
          const out = parsePrep(res.text ?? "");
          stmtS.push(wall);
          stmtStepS.push(out.stepSeconds);
          if (res.started !== undefined && res.completed !== undefined)
            stmtLivyS.push((res.completed - res.started) / 1000);
          outputs.push(JSON.stringify(out.groups));
          log(
            `run ${i + 1}/${n} Livy statement ${wall.toFixed(3)} s (step inside ${out.stepSeconds.toFixed(3)} s)`,
          );
        }
      }
    }
  } finally {
    await session.delete().catch(() => {});
    await client.close();
    await livy.stop();
  }

  const identical = outputs.every((o) => o === outputs[0]);
  const groups = JSON.parse(outputs[0] ?? "[]") as Array<[string, string, number]>;
  const counted = groups.reduce((a, g) => a + g[2], 0);
  const mSubmit = median(submitS);
  const mStmt = median(stmtS);
  const ratio = mSubmit / mStmt;
  const firstStmt = stmtS[0] ?? Number.NaN;
  const warm = stmtS.slice(1);
  const s = (v: number[]) => roundSummary(summarize(v));
  const fixedCost = median(submitS) - median(submitStepS);

  return {
    env: { python, livyUrl },
    params: {
      n,
      rows,
      seed,
      csv: csv.path,
      master: "local[2]",
      sparkConfDir,
      submitArgs,
      statementKind: "pyspark",
    },
    results: {
      csvGeneratedInS: csv.generatedS === null ? "reused" : round(csv.generatedS),
      csvSha256: csv.sha256,
      livySessionStartS: round(sessionStartS),
      sparkSubmitWallS: s(submitS),
      sparkSubmitStepInsideS: s(submitStepS),
      statementRoundTripS: s(stmtS),
      statementRoundTripWarmS: s(warm),
      statementFirstS: round(firstStmt),
      statementLivyExecS: s(stmtLivyS),
      statementStepInsideS: s(stmtStepS),
      ratioMedian: round(ratio),
      ratioWarmMedian: round(mSubmit / median(warm)),
      sparkSubmitFixedCostS: round(fixedCost),
      resultsIdentical: identical,
      groups: groups.length,
      rowsCounted: counted,
      samples: {
        sparkSubmitWallS: submitS.map((v) => round(v)),
        statementRoundTripS: stmtS.map((v) => round(v)),
      },
    },
    goals: [
      {
        goal: "interactive step faster than a spark-submit job",
        target: "≥ 20x (median wall time per step)",
        measured: `${fmt(ratio)}x (${fmt(mSubmit)} s vs ${fmt(mStmt)} s)`,
        met: ratio >= 20,
        margin: marginAbove(ratio, 20, "x"),
      },
      {
        goal: "identical results",
        target: `all ${outputs.length} outputs equal`,
        measured: identical ? `identical (${groups.length} groups, ${counted} rows)` : "DIFFERENT",
        met: identical,
        margin: identical ? "exact" : "see JSON",
      },
    ],
    tables: [
      {
        title: `Data-prep step on ${rows.toLocaleString("en")} CSV rows, N = ${n} each, local[2] (seconds)`,
        columns: ["path", "median", "min", "max", "step inside (median)", "rest (median)"],
        rows: [
          [
            "spark-submit job (wall, process start to exit)",
            round(mSubmit),
            round(Math.min(...submitS)),
            round(Math.max(...submitS)),
            round(median(submitStepS)),
            round(fixedCost),
          ],
          [
            "Livy statement via our client (submit to result)",
            round(mStmt),
            round(Math.min(...stmtS)),
            round(Math.max(...stmtS)),
            round(median(stmtStepS)),
            round(mStmt - median(stmtStepS)),
          ],
          ["ratio spark-submit / statement (medians)", `${round(ratio)}x`, "", "", "", ""],
        ],
      },
    ],
    notes: [
      `Livy session start (once, outside the timing): ${sessionStartS.toFixed(1)} s; first statement in it ${firstStmt.toFixed(2)} s, the ${warm.length} after it median ${median(warm).toFixed(2)} s (ratio ${(mSubmit / median(warm)).toFixed(1)}x on warm statements only).`,
      "\"step inside\" is the time the step's own code took (read, filter, group, collect) measured in Python; the rest of a spark-submit run is JVM start, SparkContext creation, Python worker start and shutdown; the rest of a statement is Livy's queueing, the REPL and our client's polling.",
      `The runs alternate (spark-submit first on odd runs, the statement first on even ones) so that load from other processes falls on both paths alike.`,
    ],
  };
}
