/**
 * warmstart: the first statement after Ready (issue 14, item 4). LivySessions applied against the real
 * operator, whose Livy server URL template points at the test bed's real Livy (kwok runs no containers, so
 * every LivySession opens its own Livy session, with its own Spark driver JVM, on that one server), with
 * the warm-up on (the default) and off (`spec.warmup.enabled: false`), alternating in one run. After Ready,
 * the same data-prep step runs 1 + K times in the session: the first is what a user's first step costs,
 * the median of the K after it is the warm time. Goal: the first within 1.2 × the warm time with warm-up.
 * With --old-warmup a third mode sets `spec.warmup.code` to the default before section 17.5 of
 * bench/RESULTS.md (one group-by of 1000 rows and a 4-element RDD job), on the same operator, so the former
 * and the current default are compared side by side.
 *
 * Every time is the benchmark's clock: Ready through a watch, each step from its submission to its result
 * through our client.
 */
import { type LivySession, phaseOf } from "../src/api/index.ts";
import { LivyClient } from "../src/livy/index.ts";
import { type Args, type BenchBody, log } from "./lib/bench.ts";
import {
  applySession,
  createNamespace,
  isReady,
  leftovers,
  sessionPath,
  waitUntil,
  watchKind,
} from "./lib/kube.ts";
import { buildOperator, Operator } from "./lib/operator.ts";
import { fmt, type Goal, loadSample, marginBelow, type Table } from "./lib/report.ts";
import { median, round, roundSummary, summarize } from "./lib/stats.ts";
import { testbed } from "./lib/testbed.ts";

/**
 * A data-prep step of the kind the interactive benchmark times (SQL planning and code generation, a filter,
 * a shuffle for the group-by, a sort) plus an RDD job through a Python worker; different code from the
 * default warm-up, so nothing is cached by its text. Prints "97 334".
 */
const STEP = [
  'df = spark.range(300000).selectExpr("id % 97 AS k", "id * 3 AS v").where("v % 2 = 0")',
  'rows = df.groupBy("k").agg({"v": "sum"}).orderBy("k").collect()',
  "n = sc.parallelize(range(1000), 2).map(lambda x: x * 2).filter(lambda x: x % 3 == 0).count()",
  "print(len(rows), n)",
].join("\n");
const STEP_OUTPUT = "97 334";

/** The default warm-up code before bench/RESULTS.md section 17.5 (commit a3d6c67 and earlier). */
const OLD_WARMUP =
  'spark.range(1000).selectExpr("id % 10 AS k").groupBy("k").count().collect()\n' +
  "sc.parallelize(range(4), 2).map(lambda x: x + 1).sum()";

type Mode = "warmup" | "old" | "none";

interface Sample {
  mode: Mode;
  round: number;
  applyToReadyS: number;
  firstS: number;
  warmS: number[];
  /** Recover's restarts before Ready (Livy giving up on a slow Spark context start). */
  restarts: number;
  load1: number;
  /** The warm-up statement's own run in Livy (its started → completed), when there was one. */
  warmupInLivyS?: number;
}

export async function warmstart(args: Args): Promise<BenchBody> {
  const n = args.num("n", 2);
  const k = args.num("k", 3);
  const withOld = args.bool("old-warmup");
  const bed = await testbed({ needLivy: true });
  const livyUrl = bed.state.livyUrl;
  if (!livyUrl) throw new Error("no real Livy in the test bed");
  const ns = await createNamespace(bed.kube, "bench-warm");
  const op = await Operator.start({
    kubeconfig: bed.state.kubeconfig,
    kubeOrigin: bed.state.apiserverUrl,
    serverUrlTemplate: livyUrl,
    logDir: `${bed.state.stateDir}/logs`,
    name: "warmstart",
    sessionPollIntervalMs: 500,
  });
  const readyAt = new Map<string, number>();
  const sessions = watchKind<LivySession>(bed.kube, sessionPath(ns), (_type, o, at) => {
    if (isReady(o) && !readyAt.has(o.metadata.name)) readyAt.set(o.metadata.name, at);
  });
  await sessions.waitForSync();
  const client = new LivyClient({ baseUrl: livyUrl, timeoutMs: 120_000 });
  const samples: Sample[] = [];
  const failures: string[] = [];

  const one = async (mode: Mode, round: number) => {
    const name = `${mode === "warmup" ? "warm" : mode === "old" ? "old" : "cold"}-${round}`;
    // Recover: real Livy at load 40 sometimes gives up on a Spark context that starts too slowly (its
    // own connect timeout); a restart is then part of the start, as for a user, and counted.
    const spec = {
      kind: "pyspark",
      idleTimeout: "0",
      startupTimeout: "20m",
      failurePolicy: "Recover",
      maxRestarts: 3,
      ...(mode === "none"
        ? { warmup: { enabled: false } }
        : mode === "old"
          ? { warmup: { code: OLD_WARMUP } }
          : {}),
    };
    const t0 = performance.now();
    await applySession(bed.kube, ns, name, spec);
    // Ready, or Failed (its message says why): no wait outlasts what it waits for
    await waitUntil(
      `${name} Ready`,
      () => readyAt.has(name) || phaseOf(sessions.get(`${ns}/${name}`)) === "Failed",
      1_200_000,
      20,
    );
    const ls = sessions.get(`${ns}/${name}`);
    try {
      if (!readyAt.has(name)) throw new Error(`not Ready: ${phaseOf(ls)} ${ls?.status?.message ?? ""}`);
      const id = ls?.status?.livySessionId;
      if (id === undefined || id === null) throw new Error("Ready without livySessionId");
      const applyToReadyS = ((readyAt.get(name) ?? Number.NaN) - t0) / 1000;
      const session = client.session(id);
      const times: number[] = [];
      for (let i = 0; i <= k; i++) {
        const s0 = performance.now();
        const res = await session.run(STEP, { timeoutMs: 900_000 });
        times.push((performance.now() - s0) / 1000);
        if (res.text?.trim() !== STEP_OUTPUT)
          throw new Error(`step gave ${JSON.stringify(res.text)}, expected ${STEP_OUTPUT}`);
      }
      const [firstS = Number.NaN, ...warmS] = times;
      const restarts = ls?.status?.restarts ?? 0;
      const warmupInLivyS = mode === "none" ? undefined : await warmupRun(livyUrl, id);
      const sample = {
        mode,
        round,
        applyToReadyS,
        firstS,
        warmS,
        restarts,
        load1: loadSample().load1,
        ...(warmupInLivyS === undefined ? {} : { warmupInLivyS }),
      };
      samples.push(sample);
      log(
        `${name}: apply → Ready ${applyToReadyS.toFixed(1)} s (${restarts} restarts; warm-up in Livy ${warmupInLivyS?.toFixed(1) ?? "-"} s); first step ${firstS.toFixed(2)} s, then ${warmS.map((w) => w.toFixed(2)).join(", ")} s (load ${sample.load1})`,
      );
    } catch (err) {
      failures.push(`${name}: ${String(err)}`);
      log(`${name}: FAILED ${String(err)}`);
    } finally {
      await bed.kube.delete(sessionPath(ns, name));
      await waitUntil(`${name} deleted`, () => !sessions.get(`${ns}/${name}`), 180_000, 50);
    }
  };

  try {
    for (let r = 0; r < n; r++) {
      // alternating which goes first, so that load from others falls on both alike
      const modes: Mode[] = withOld ? ["warmup", "old", "none"] : ["warmup", "none"];
      const order = r % 2 === 0 ? modes : [...modes].reverse();
      for (const mode of order) await one(mode, r);
    }
  } finally {
    await client.close();
    await sessions.stop();
    await op.stop();
  }
  const left = await leftovers(bed.kube, ns);
  await bed.kube.delete(`/api/v1/namespaces/${ns}`);

  const of = (mode: Mode) => samples.filter((s) => s.mode === mode);
  const ratio = (s: Sample) => s.firstS / median(s.warmS);
  const row = (label: string, mode: Mode, f: (s: Sample) => number) => {
    const v = of(mode).map(f).filter(Number.isFinite);
    const s = summarize(v);
    return [label, round(s.p50), round(s.min), round(s.max)];
  };
  const table: Table = {
    title: `First statement after Ready vs warm, real Livy 0.9 / Spark 3.5.7 (pyspark, local master), N = ${n} sessions per mode, K = ${k} warm steps each`,
    columns: ["figure", "median", "min", "max"],
    rows: [
      row("warm-up on: apply → Ready (s)", "warmup", (s) => s.applyToReadyS),
      row("warm-up on: first step after Ready (s)", "warmup", (s) => s.firstS),
      row("warm-up on: warm step, median of K (s)", "warmup", (s) => median(s.warmS)),
      row("**warm-up on: first / warm**", "warmup", ratio),
      ...(withOld
        ? [
            row("former warm-up: apply → Ready (s)", "old", (s) => s.applyToReadyS),
            row("former warm-up: first step after Ready (s)", "old", (s) => s.firstS),
            row("former warm-up: warm step, median of K (s)", "old", (s) => median(s.warmS)),
            row("**former warm-up: first / warm**", "old", ratio),
          ]
        : []),
      row("warm-up off: apply → Ready (s)", "none", (s) => s.applyToReadyS),
      row("warm-up off: first step after Ready (s)", "none", (s) => s.firstS),
      row("warm-up off: warm step, median of K (s)", "none", (s) => median(s.warmS)),
      row("warm-up off: first / warm", "none", ratio),
      row("apply → first result, warm-up on (s)", "warmup", (s) => s.applyToReadyS + s.firstS),
      ...(withOld
        ? [row("apply → first result, former warm-up (s)", "old", (s) => s.applyToReadyS + s.firstS)]
        : []),
      row("apply → first result, warm-up off (s)", "none", (s) => s.applyToReadyS + s.firstS),
      row(
        "warm-up statement in Livy (started → completed, s)",
        "warmup",
        (s) => s.warmupInLivyS ?? Number.NaN,
      ),
      ...(withOld
        ? [row("former warm-up statement in Livy (s)", "old", (s) => s.warmupInLivyS ?? Number.NaN)]
        : []),
    ],
  };
  const warmRatio = median(of("warmup").map(ratio).filter(Number.isFinite));
  const coldRatio = median(of("none").map(ratio).filter(Number.isFinite));
  const oldRatio = median(of("old").map(ratio).filter(Number.isFinite));
  const goals: Goal[] = [
    {
      goal: "first statement after Ready (warm-up on)",
      target: "≤ 1.2 × the warm time (median over sessions)",
      measured: `${fmt(warmRatio)}x (${withOld ? `former warm-up: ${fmt(oldRatio)}x, ` : ""}off: ${fmt(coldRatio)}x)`,
      met: Number.isFinite(warmRatio) ? warmRatio <= 1.2 : null,
      margin: marginBelow(warmRatio, 1.2, "x"),
    },
  ];
  return {
    env: { python: bed.state.python, livyUrl },
    params: {
      n,
      k,
      operator: `commit ${await buildOperator()}, compiled; --session-poll-interval-ms 500`,
      spec: `kind pyspark, idleTimeout 0, startupTimeout 20m, failurePolicy Recover (maxRestarts 3); warmup default (on)${withOld ? " vs warmup.code = the former default" : ""} vs warmup.enabled false`,
      ...(withOld ? { formerWarmup: OLD_WARMUP } : {}),
      step: STEP,
    },
    results: {
      summary: {
        firstOverWarmWithWarmup: round(warmRatio),
        firstOverWarmWithout: round(coldRatio),
        ...(withOld ? { firstOverWarmWithFormerWarmup: round(oldRatio) } : {}),
        warmup: roundSummary(summarize(of("warmup").map(ratio).filter(Number.isFinite))),
        none: roundSummary(summarize(of("none").map(ratio).filter(Number.isFinite))),
        ...(withOld ? { old: roundSummary(summarize(of("old").map(ratio).filter(Number.isFinite))) } : {}),
      },
      samples: samples.map((s) => ({
        ...s,
        applyToReadyS: round(s.applyToReadyS),
        firstS: round(s.firstS),
        warmS: s.warmS.map(round),
        ...(s.warmupInLivyS === undefined ? {} : { warmupInLivyS: round(s.warmupInLivyS) }),
      })),
      failures,
      leftovers: left,
    },
    tables: [table],
    goals,
    notes: [
      "Each LivySession opens its own Livy session (its own Spark driver JVM) on the test bed's one real Livy server; the operator runs as built from the commit, against kwok Deployments.",
      "The step is a DataFrame filter, group-by with a shuffle and sort, plus an RDD job through a Python worker; its text differs from the warm-up's.",
      "Modes alternate (warm-up first on even rounds, off first on odd ones).",
      "The warm-up's own run is Livy's started → completed of statement 0 in the Livy session.",
    ],
  };
}

/** Livy's own started → completed of the warm-up (the session's statement 0), in seconds. */
async function warmupRun(livyUrl: string, id: number): Promise<number | undefined> {
  const res = await fetch(`${livyUrl}/sessions/${id}/statements/0`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) return undefined;
  const st = (await res.json()) as { started?: number; completed?: number };
  return st.started && st.completed ? (st.completed - st.started) / 1000 : undefined;
}
