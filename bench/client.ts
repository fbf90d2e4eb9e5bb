/**
 * client (issue 4's benchmark): a trivial statement's round trip through this client vs the PyPI `livy`
 * client (pylivy 0.8, timed inside Python) vs a naive one-request-per-statement poller, side by side
 * against the same real Livy; 200 statements across 4 sessions (wall time); requests per completed
 * statement. Then the client's own overhead against the stand-in with zero delay, and its monitoring
 * cost: one list request per busy session per tick.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { LivyClient, LivyProtocolError } from "../src/livy/index.ts";
import { type Args, type BenchBody, log } from "./lib/bench.ts";
import { NaivePoller } from "./lib/naive.ts";
import { BENCH_DIR, fmt, type Goal, marginBelow, type Table } from "./lib/report.ts";
import { spawnStandin } from "./lib/standin-process.ts";
import { median, round, roundSummary, summarize } from "./lib/stats.ts";
import { Standin, testbed } from "./lib/testbed.ts";

const run = promisify(execFile);
const CODE = "1 + 1";

interface PyRoundtrip {
  latenciesMs: number[];
  requests: number;
  completed: number;
}
interface PyParallel {
  wallS: number;
  requests: number;
  completed: number;
}

async function pylivy<T>(python: string, args: string[]): Promise<T> {
  const { stdout } = await run(python, [join(BENCH_DIR, "python", "pylivy_bench.py"), ...args], {
    maxBuffer: 64 << 20,
    timeout: 600_000,
  });
  const last = stdout.trim().split("\n").pop() ?? "{}";
  return JSON.parse(last) as T;
}

/**
 * Real Livy 0.9 sometimes answers a finished statement as `available` with `output: null` for a moment
 * (pylivy keeps polling in that case; see LivySession._execute). Our client rejects it with
 * LivyProtocolError ("... is available without output"): a bug in src/livy reported with these results.
 * The benchmark counts each occurrence and runs the statement again, so the comparison can go on.
 */
const outputRace = { count: 0 };
function isOutputRace(err: unknown): boolean {
  return err instanceof LivyProtocolError && /available without output/.test(err.message);
}
async function runOurs(run: () => Promise<{ text: string | undefined }>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      expect2((await run()).text);
      return;
    } catch (err) {
      if (!isOutputRace(err) || attempt >= 5) throw err;
      outputRace.count++;
    }
  }
}

function expect2(text: string | undefined): void {
  if ((text ?? "").trim() !== "2") throw new Error(`1 + 1 gave ${JSON.stringify(text)}`);
}

type Who = "ours" | "pylivy" | "naive";
type ParallelWho = Who | "naiveOrdered";

const LABEL: Record<ParallelWho, string> = {
  ours: "this client (pipelined POSTs, multiplexed monitor)",
  pylivy: "pylivy 0.8 (timed in Python; a thread per session)",
  naive: "naive poller (all POSTs at once, GET per statement every N ms)",
  naiveOrdered: "naive poller, POSTs in order (each waits for the previous 201)",
};

/** `acc = []`, then `acc = acc + [i]; len(acc)`: statement i answers i only if all before it ran first. */
function dependentBurst(n: number): string[] {
  return ["acc = []", ...Array.from({ length: n }, (_, i) => `acc = acc + [${i + 1}]; len(acc)`)];
}
function burstInOrder(outputs: string[]): boolean {
  return outputs.slice(1).every((o, i) => o.trim() === String(i + 1));
}

/** The real Livy to measure against: `--livy-url` (and the test bed's Python for pylivy), or the test bed's. */
async function livyTarget(args: Args, skipLivy: boolean) {
  const url = args.str("livy-url", "");
  if (url) {
    const { livyInstallPaths } = await import("../test/testbed/livy.ts");
    return { livyUrl: url, python: livyInstallPaths().python, standinUrl: null, bed: null };
  }
  const bed = await testbed({ needLivy: !skipLivy });
  return { livyUrl: bed.state.livyUrl, python: bed.state.python, standinUrl: bed.state.standinUrl, bed };
}

export async function client(args: Args): Promise<BenchBody> {
  const m = args.num("roundtrips", 200);
  const warmup = args.num("warmup", 5);
  const parallelTotal = args.num("statements", 200);
  const nSessions = args.num("sessions", 4);
  const rounds = args.num("rounds", 3);
  const naiveMs = args.num("naive-interval-ms", 100);
  const standinM = args.num("standin-roundtrips", 1000);
  const skipLivy = args.bool("standin-only");
  const target = await livyTarget(args, skipLivy);
  const { python, livyUrl } = target;
  const tables: Table[] = [];
  const goals: Goal[] = [];
  const results: Record<string, unknown> = {};
  const notes: string[] = [];

  if (!skipLivy) {
    if (!python || !livyUrl) throw new Error("the test bed has no real Livy");
    const ours = new LivyClient({ baseUrl: livyUrl, timeoutMs: 120_000 });
    const tag = Date.now().toString(36);
    log(`creating ${nSessions} pyspark sessions on real Livy (tens of seconds each on 2 cores)`);
    const t0 = performance.now();
    // --session-ids 4,5,6,7: idle sessions made earlier (kept afterwards), instead of creating and deleting them
    const given = args.str("session-ids", "");
    const ids: number[] = given ? given.split(",").map(Number) : [];
    if (ids.length > 0 && ids.length !== nSessions) throw new Error(`--session-ids needs ${nSessions} ids`);
    if (ids.length === 0)
      for (let i = 0; i < nSessions; i++)
        ids.push((await ours.createSession({ kind: "pyspark", name: `bench-client-${tag}-${i}` })).id);
    await Promise.all(ids.map((id) => ours.session(id).waitForIdle({ timeoutMs: 900_000 })));
    const startS = (performance.now() - t0) / 1000;
    log(`sessions ${ids.join(",")} idle after ${startS.toFixed(0)} s`);
    // a fresh pyspark session's first statement takes seconds (Python and JVM warm-up): not what is compared
    await Promise.all(ids.map((id) => runOurs(() => ours.session(id).run(CODE))));
    const naive = new NaivePoller(livyUrl, naiveMs);
    const sid = ids[0] ?? 0;
    try {
      // 1. round trip, one statement at a time on one session; blocks in ABC CBA order against drift
      const lat: Record<Who, number[]> = { ours: [], pylivy: [], naive: [] };
      const reqs: Record<Who, number> = { ours: 0, pylivy: 0, naive: 0 };
      const half = Math.ceil(m / 2);
      const block = async (who: Who, count: number, warm: number) => {
        if (who === "pylivy") {
          const r = await pylivy<PyRoundtrip>(python, [
            "roundtrip",
            livyUrl,
            String(sid),
            String(count),
            String(warm),
          ]);
          lat.pylivy.push(...r.latenciesMs);
          reqs.pylivy += r.requests;
          return;
        }
        for (let i = 0; i < warm + count; i++) {
          const before = who === "ours" ? ours.stats().requests : naive.requests;
          const s0 = performance.now();
          if (who === "ours") await runOurs(() => ours.session(sid).run(CODE));
          else expect2(await naive.run(sid, CODE));
          const dt = performance.now() - s0;
          if (i >= warm) {
            lat[who].push(dt);
            reqs[who] += (who === "ours" ? ours.stats().requests : naive.requests) - before;
          }
        }
      };
      for (const who of ["ours", "pylivy", "naive"] as const) {
        log(`round trip: ${who}, ${half} statements`);
        await block(who, half, warmup);
      }
      for (const who of ["naive", "pylivy", "ours"] as const) {
        log(`round trip: ${who}, ${m - half} statements`);
        await block(who, m - half, 1);
      }

      // 2. 200 statements across the sessions, all at once
      const perSession = Math.ceil(parallelTotal / nSessions);
      const total = perSession * nSessions;
      const walls: Record<ParallelWho, number[]> = { ours: [], pylivy: [], naive: [], naiveOrdered: [] };
      const preqs: Record<ParallelWho, number[]> = { ours: [], pylivy: [], naive: [], naiveOrdered: [] };
      const burst = Array.from({ length: perSession }, () => CODE);
      const parallelRun = async (who: ParallelWho) => {
        log(`parallel: ${who}, ${total} statements over ${nSessions} sessions`);
        if (who === "pylivy") {
          // a thread per session, each running its share one statement after another
          const r = await pylivy<PyParallel>(python, [
            "parallel",
            livyUrl,
            String(perSession),
            ...ids.map(String),
          ]);
          walls.pylivy.push(r.wallS);
          preqs.pylivy.push(r.requests);
          return;
        }
        const before = who === "ours" ? ours.stats().requests : naive.requests;
        const s0 = performance.now();
        if (who === "ours") {
          const handles = await Promise.all(
            Array.from({ length: total }, (_, i) => ours.session(ids[i % nSessions] ?? 0).submit(CODE)),
          );
          // a statement hit by the output race is run again once its batch is done (counted in the result)
          const settled = await Promise.allSettled(handles.map((h) => h.result));
          const again: number[] = [];
          settled.forEach((r, i) => {
            if (r.status === "fulfilled") expect2(r.value.text);
            else if (isOutputRace(r.reason)) {
              outputRace.count++;
              again.push(i);
            } else throw r.reason;
          });
          await Promise.all(again.map((i) => runOurs(() => ours.session(ids[i % nSessions] ?? 0).run(CODE))));
        } else {
          const outs = await Promise.all(ids.map((id) => naive.burst(id, burst, who === "naiveOrdered")));
          for (const o of outs.flat()) expect2(o);
        }
        walls[who].push((performance.now() - s0) / 1000);
        preqs[who].push((who === "ours" ? ours.stats().requests : naive.requests) - before);
      };
      // Untimed: every session's Livy server and driver paths warm (JIT) before the timed bursts; before it
      // the first burst on three sessions that had run one statement each took 1.7x as long.
      log("parallel: warm-up bursts (not timed)");
      await parallelRun("ours");
      await parallelRun("naive");
      for (const k of Object.keys(walls) as ParallelWho[]) {
        walls[k].length = 0;
        preqs[k].length = 0;
      }
      const order: ParallelWho[] = ["ours", "pylivy", "naive", "naiveOrdered"];
      for (let r = 0; r < rounds; r++)
        for (const who of r % 2 === 0 ? order : [...order].reverse()) await parallelRun(who);

      // 3. the same burst shape with dependent statements: is submission order kept?
      const orderKept: Record<ParallelWho, string> = {
        ours: "",
        pylivy: "yes, by construction (one statement at a time per session)",
        naive: "",
        naiveOrdered: "",
      };
      const dep = dependentBurst(perSession - 1);
      for (const who of ["ours", "naive", "naiveOrdered"] as const) {
        log(`order check: ${who}, a dependent burst of ${dep.length} per session`);
        const outs = await Promise.all(
          ids.map(async (id) => {
            if (who !== "ours") return naive.burst(id, dep, who === "naiveOrdered");
            const hs = await Promise.all(dep.map((c) => ours.session(id).submit(c)));
            return (await Promise.all(hs.map((h) => h.result))).map((r) => r.text ?? "");
          }),
        );
        const wrong = outs.filter((o) => !burstInOrder(o)).length;
        orderKept[who] =
          wrong === 0 ? "yes" : `**no**: ${wrong} of ${nSessions} sessions ran it out of order`;
      }

      const wall = Object.fromEntries(Object.entries(walls).map(([k, v]) => [k, median(v)])) as Record<
        ParallelWho,
        number
      >;
      const preq = Object.fromEntries(Object.entries(preqs).map(([k, v]) => [k, median(v)])) as Record<
        ParallelWho,
        number
      >;
      const sum = { ours: summarize(lat.ours), pylivy: summarize(lat.pylivy), naive: summarize(lat.naive) };
      const ratio = sum.ours.p50 / sum.pylivy.p50;
      const wallRatio = wall.ours / wall.naive;
      results.realLivy = {
        sessions: ids,
        sessionsStartS: round(startS),
        roundTripMs: {
          ours: roundSummary(sum.ours),
          pylivy: roundSummary(sum.pylivy),
          naive: roundSummary(sum.naive),
        },
        roundTripRequestsPerStatement: {
          ours: round(reqs.ours / lat.ours.length, 2),
          pylivy: round(reqs.pylivy / lat.pylivy.length, 2),
          naive: round(reqs.naive / lat.naive.length, 2),
        },
        parallel: {
          statements: total,
          rounds,
          wallS: Object.fromEntries(Object.entries(wall).map(([k, v]) => [k, round(v)])),
          wallSamplesS: Object.fromEntries(
            Object.entries(walls).map(([k, v]) => [k, v.map((x) => round(x))]),
          ),
          requestsPerStatement: Object.fromEntries(
            Object.entries(preq).map(([k, v]) => [k, round(v / total, 2)]),
          ),
          oursOverNaive: round(wallRatio),
          orderKept,
        },
        oursP50OverPylivyP50: round(ratio),
        oursOutputRaceRejections: outputRace.count,
        samplesMs: {
          ours: lat.ours.map((v) => round(v)),
          pylivy: lat.pylivy.map((v) => round(v)),
          naive: lat.naive.map((v) => round(v)),
        },
      };
      tables.push({
        title: `Real Livy 0.9 (pyspark, local[2]): trivial statement \`${CODE}\`, ${m} round trips each, one at a time`,
        columns: ["client", "p50 (ms)", "p90 (ms)", "p99 (ms)", "p99 / p50", "requests / statement"],
        rows: (["ours", "pylivy", "naive"] as const).map((who) => [
          who === "naive" ? `naive poller (GET every ${naiveMs} ms)` : LABEL[who],
          round(sum[who].p50),
          round(sum[who].p90),
          round(sum[who].p99),
          round(sum[who].p99 / sum[who].p50, 2),
          round(reqs[who] / lat[who].length, 2),
        ]),
      });
      tables.push({
        title: `Real Livy 0.9: ${total} trivial statements over ${nSessions} sessions submitted at once (wall, median of ${rounds}); then a dependent burst of the same shape`,
        columns: [
          "client",
          "wall (s)",
          "samples (s)",
          "vs naive",
          "requests / statement",
          "submission order kept",
        ],
        rows: (["ours", "naive", "naiveOrdered", "pylivy"] as const).map((who) => [
          who === "naive" ? LABEL.naive.replace("N ms", `${naiveMs} ms`) : LABEL[who],
          round(wall[who]),
          walls[who].map((x) => round(x)).join(", "),
          `${round(wall[who] / wall.naive, 2)}x`,
          round(preq[who] / total, 2),
          orderKept[who],
        ]),
      });
      goals.push({
        goal: "trivial round trip vs pylivy (same real Livy)",
        target: "our p50 ≤ 1/4 of pylivy's",
        measured: `${fmt(sum.ours.p50)} ms vs ${fmt(sum.pylivy.p50)} ms = ${ratio.toFixed(3)} of pylivy's`,
        met: ratio <= 0.25,
        margin:
          ratio <= 0.25
            ? `${(0.25 / ratio).toFixed(1)}x better than needed`
            : `missed: ${(ratio / 0.25).toFixed(2)}x the allowed ratio`,
      });
      const tail = sum.ours.p99 / sum.ours.p50;
      goals.push({
        goal: "trivial round trip tail",
        target: "our p99 ≤ 2 × our p50",
        measured: `p99 ${fmt(sum.ours.p99)} ms, p50 ${fmt(sum.ours.p50)} ms: ${tail.toFixed(2)}x`,
        met: tail <= 2,
        margin: tail <= 2 ? `${(2 / tail).toFixed(2)}x under` : `missed by ${(tail / 2).toFixed(2)}x`,
      });
      goals.push({
        goal: `${total} statements over ${nSessions} sessions at once`,
        target: "our wall ≤ 0.5 × the naive poller's, same run",
        measured: `${fmt(wall.ours)} s vs ${fmt(wall.naive)} s = ${wallRatio.toFixed(2)}x (naive in order: ${fmt(wall.naiveOrdered)} s, pylivy ${fmt(wall.pylivy)} s)`,
        met: wallRatio <= 0.5,
        margin:
          wallRatio <= 0.5
            ? `${(0.5 / wallRatio).toFixed(2)}x under`
            : `missed by ${(wallRatio / 0.5).toFixed(2)}x`,
      });
      goals.push({
        goal: "a dependent burst runs in submission order",
        target: `every session's ${dep.length} statements in order`,
        measured: `ours: ${orderKept.ours}; naive (all at once): ${orderKept.naive}`,
        met: orderKept.ours === "yes",
        margin: "exact",
      });
      notes.push(
        `Our client rejected ${outputRace.count} statement(s) that real Livy briefly reported as \`available\` with \`output: null\` and ran each again (fixed in 01563c2; counted in case it comes back).`,
        `pylivy sleeps 0.1 s before its first poll of a statement and then 0.2, 0.3, 0.5, 1 s (livy/session.py polling_intervals), which sets its floor; the naive poller's floor is its ${naiveMs} ms interval. Our monitor polls 2 ms after a submission, then backs off from 5 ms by 1.5x to 1 s, and at most every 250 ms while a session's statements are still being submitted.`,
        "Livy numbers a statement when its RPC reaches the driver and handles one connection's requests one after another: our client pipelines a session's POSTs on one connection, so its per-session rate is Livy's own handling time per POST (two driver RPCs); the naive poller's concurrent POSTs on several connections overlap that handling and are numbered in whatever order they reach the driver (the order check above).",
        given
          ? `The ${nSessions} real Livy sessions were made beforehand (--session-ids ${given}).`
          : `The ${nSessions} real Livy sessions took ${startS.toFixed(0)} s to start (not timed in the comparison).`,
      );
    } finally {
      if (!given) await Promise.all(ids.map((id) => ours.deleteSession(id).catch(() => {})));
      await ours.close();
      await naive.close();
    }
  }

  // 4. own overhead: the stand-in with zero delay (the test bed's, or a process of our own)
  const own = target.standinUrl ? null : await spawnStandin();
  const standinUrl = target.standinUrl ?? own?.url ?? "";
  const standin = new Standin(standinUrl);
  await standin.reset();
  await standin.configure({ sessionStartupMs: 0, statementRunMs: 0, responseDelayMs: 0 });
  const sc = new LivyClient({ baseUrl: standinUrl, timeoutMs: 30_000 });
  try {
    const id = (await sc.createSession({ kind: "pyspark" })).id;
    const s = sc.session(id);
    await s.waitForIdle({ timeoutMs: 10_000 });
    for (let i = 0; i < 50; i++) expect2((await s.run(CODE)).text);
    await standin.resetCounters();
    const before = sc.stats().requests;
    const ownMs: number[] = [];
    for (let i = 0; i < standinM; i++) {
      const s0 = performance.now();
      expect2((await s.run(CODE)).text);
      ownMs.push(performance.now() - s0);
    }
    const ownReq = (sc.stats().requests - before) / standinM;
    const ownSum = summarize(ownMs);

    // monitoring cost with busy sessions: statements that run 50 ms, many in flight per session
    await standin.configure({ statementRunMs: 50 });
    const busyIds: number[] = [];
    for (let i = 0; i < nSessions; i++) busyIds.push((await sc.createSession({ kind: "pyspark" })).id);
    await Promise.all(busyIds.map((b) => sc.session(b).waitForIdle({ timeoutMs: 10_000 })));
    const ticks0 = busyIds.map((b) => sc.session(b).monitorStats());
    await standin.resetCounters();
    const perSession = Math.ceil(parallelTotal / nSessions);
    const s0 = performance.now();
    const handles = await Promise.all(
      Array.from({ length: perSession * nSessions }, (_, i) =>
        sc.session(busyIds[i % nSessions] ?? 0).submit(CODE),
      ),
    );
    for (const r of await Promise.all(handles.map((h) => h.result))) expect2(r.text);
    const busyWall = (performance.now() - s0) / 1000;
    const counters = await standin.counters();
    const ticks = busyIds
      .map((b, i) => sc.session(b).monitorStats().ticks - (ticks0[i]?.ticks ?? 0))
      .reduce((a, b) => a + b, 0);
    const fallbacks = busyIds
      .map((b, i) => sc.session(b).monitorStats().fallbackRequests - (ticks0[i]?.fallbackRequests ?? 0))
      .reduce((a, b) => a + b, 0);
    const listReqs = counters.routes["GET /sessions/:id/statements"] ?? 0;
    const getReqs = counters.routes["GET /sessions/:id/statements/:sid"] ?? 0;
    const done = perSession * nSessions;
    results.standin = {
      ownOverheadMs: roundSummary(ownSum),
      ownRequestsPerStatement: round(ownReq, 2),
      busy: {
        sessions: nSessions,
        statements: done,
        statementRunMs: 50,
        wallS: round(busyWall),
        monitorTicks: ticks,
        listRequests: listReqs,
        perStatementGets: getReqs,
        fallbackRequests: fallbacks,
        monitoringRequestsPerTick: round((listReqs + getReqs) / Math.max(1, ticks), 3),
        monitoringRequestsPerStatement: round((listReqs + getReqs) / done, 3),
        routes: counters.routes,
      },
    };
    tables.push({
      title: `Stand-in, zero delay: this client's own overhead (${standinM} round trips of \`${CODE}\`, one at a time)`,
      columns: ["figure", "value"],
      rows: [
        [
          "round trip p50 / p90 / p99 (ms)",
          `${round(ownSum.p50)} / ${round(ownSum.p90)} / ${round(ownSum.p99)}`,
        ],
        ["requests per statement (POST + polls)", round(ownReq, 2)],
        [
          `monitoring with ${nSessions} busy sessions (${done} statements of 50 ms, all submitted at once): list requests / monitor ticks`,
          `${listReqs} / ${ticks}`,
        ],
        ["per-statement GETs (fallbacks)", `${getReqs} (${fallbacks})`],
        ["monitoring requests per tick of one session", round((listReqs + getReqs) / Math.max(1, ticks), 3)],
        ["monitoring requests per completed statement", round((listReqs + getReqs) / done, 3)],
      ],
    });
    goals.push({
      goal: "own overhead (stand-in, zero delay)",
      target: "p50 < 5 ms",
      measured: `${fmt(ownSum.p50)} ms (p99 ${fmt(ownSum.p99)} ms)`,
      met: ownSum.p50 < 5,
      margin: marginBelow(ownSum.p50, 5, "ms"),
    });
    const perTick = (listReqs + getReqs) / Math.max(1, ticks);
    goals.push({
      goal: "monitoring requests per tick",
      target: "= busy sessions (one list request per busy session per tick, none per statement)",
      measured: `${listReqs} list requests for ${ticks} session ticks, ${getReqs} per-statement GETs`,
      met: getReqs === 0 && listReqs === ticks,
      margin: `${perTick.toFixed(3)} requests per session tick`,
    });
  } finally {
    await sc.close();
    own?.stop();
  }
  return {
    env: { python, livyUrl },
    params: {
      roundtrips: m,
      warmup,
      statements: parallelTotal,
      sessions: nSessions,
      naiveIntervalMs: naiveMs,
      standinRoundtrips: standinM,
      code: CODE,
    },
    results,
    goals,
    tables,
    notes,
  };
}
