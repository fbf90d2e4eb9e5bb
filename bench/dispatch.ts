/**
 * dispatch: 10,000 trivial statements over 16 sessions of the stand-in through the client's SessionPool:
 * throughput, the client's memory (this process: RSS and V8 heap, sampled every 20 ms), and the stand-in's
 * monitoring requests per completed statement (its own per-route counters).
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { LivyClient, SessionPool } from "../src/livy/index.ts";
import { type Args, type BenchBody, log } from "./lib/bench.ts";
import { fmt, type Goal, type Table } from "./lib/report.ts";
import { spawnStandin } from "./lib/standin-process.ts";
import { round, roundSummary, summarize } from "./lib/stats.ts";
import { Standin, testbed } from "./lib/testbed.ts";

const CODE = "1 + 1";
const MiB = 2 ** 20;

/** A full garbage collection, so that "heap used" means live objects, not garbage not yet collected. */
function gc(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

export async function dispatch(args: Args): Promise<BenchBody> {
  const total = args.num("statements", 10_000);
  const nSessions = args.num("sessions", 16);
  const perSession = args.num("per-session", 2);
  const runMs = args.num("statement-ms", 0);
  // --standalone: a stand-in process of its own instead of the bench test bed's (no control plane needed)
  const own = args.bool("standalone") ? await spawnStandin() : null;
  const standinUrl = own ? own.url : (await testbed()).state.standinUrl;
  const standin = new Standin(standinUrl);
  await standin.reset();
  await standin.configure({
    sessionStartupMs: 0,
    statementRunMs: runMs,
    responseDelayMs: 0,
    retainedStatements: 100,
  });
  const client = new LivyClient({ baseUrl: standinUrl, timeoutMs: 60_000 });
  const ids: number[] = [];
  for (let i = 0; i < nSessions; i++) ids.push((await client.createSession({ kind: "pyspark" })).id);
  const sessions = ids.map((id) => client.session(id));
  await Promise.all(sessions.map((s) => s.waitForIdle({ timeoutMs: 10_000 })));
  const pool = new SessionPool(sessions, { maxInFlightPerSession: perSession, maxQueue: 1_000 });
  // warm up the code paths and connections
  await Promise.all(Array.from({ length: 200 }, () => pool.run(CODE)));

  gc();
  const mem0 = process.memoryUsage();
  let peakRss = mem0.rss;
  let peakHeap = mem0.heapUsed;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    if (m.rss > peakRss) peakRss = m.rss;
    if (m.heapUsed > peakHeap) peakHeap = m.heapUsed;
  }, 20);
  await standin.resetCounters();
  const req0 = client.stats().requests;
  const ticks0 = sessions.map((s) => s.monitorStats());
  const lat: number[] = [];
  const inLivy: number[] = [];
  let wrong = 0;
  let failed = 0;
  log(`dispatching ${total} statements over ${nSessions} sessions (≤ ${perSession} in flight per session)`);
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const s0 = performance.now();
    const p = await pool.submit(CODE); // waits while the pool's queue is full (back-pressure)
    let d0 = 0;
    void p.dispatched.then(
      () => {
        d0 = performance.now();
      },
      () => {},
    );
    pending.push(
      p.result.then(
        (r) => {
          const now = performance.now();
          lat.push(now - s0);
          inLivy.push(now - d0);
          if (r.text?.trim() !== "2") wrong++;
        },
        () => {
          failed++;
        },
      ),
    );
  }
  await Promise.all(pending);
  const wallS = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  pending.length = 0;
  gc();
  const mem1 = process.memoryUsage();
  const counters = await standin.counters();
  const stats = client.stats();
  const ticks = sessions.reduce((a, s, i) => a + s.monitorStats().ticks - (ticks0[i]?.ticks ?? 0), 0);
  const fallbacks = sessions.reduce(
    (a, s, i) => a + s.monitorStats().fallbackRequests - (ticks0[i]?.fallbackRequests ?? 0),
    0,
  );
  pool.close();
  await Promise.all(ids.map((id) => client.deleteSession(id).catch(() => {})));
  await client.close();
  own?.stop();

  const completed = lat.length;
  const listReqs = counters.routes["GET /sessions/:id/statements"] ?? 0;
  const getReqs = counters.routes["GET /sessions/:id/statements/:sid"] ?? 0;
  const posts = counters.routes["POST /sessions/:id/statements"] ?? 0;
  const monitoring = listReqs + getReqs;
  const throughput = completed / wallS;
  const l = summarize(lat);
  const li = summarize(inLivy);
  const goals: Goal[] = [
    {
      goal: `${total} statements completed`,
      target: "all, with the right result",
      measured: `${completed - wrong} right, ${wrong} wrong, ${failed} failed`,
      met: completed === total && wrong === 0 && failed === 0,
      margin: failed + wrong === 0 ? "none lost" : `${failed + wrong} lost`,
    },
    {
      goal: "monitoring cost grows with sessions, not statements",
      target: "one list request per busy session per tick; no per-statement GETs",
      measured: `${listReqs} list requests = ${ticks} session ticks; ${getReqs} per-statement GETs`,
      met: getReqs === 0 && listReqs === ticks,
      margin: `${fmt(monitoring / completed)} monitoring requests per completed statement`,
    },
  ];
  const tables: Table[] = [
    {
      title: `${total.toLocaleString("en")} trivial statements over ${nSessions} stand-in sessions through SessionPool (≤ ${perSession} in flight per session, statements run ${runMs} ms)`,
      columns: ["figure", "value"],
      rows: [
        ["wall time (s)", round(wallS)],
        ["throughput (statements/s)", round(throughput)],
        ["accepted by Livy → result, per statement, p50 / p99 (ms)", `${round(li.p50)} / ${round(li.p99)}`],
        [
          "pool.submit → result, p50 / p99 (ms; includes the wait in the pool's queue of 1000)",
          `${round(l.p50)} / ${round(l.p99)}`,
        ],
        [
          "process RSS: before / peak / after (MiB); growth during the run",
          `${round(mem0.rss / MiB)} / ${round(peakRss / MiB)} / ${round(mem1.rss / MiB)}; +${round((peakRss - mem0.rss) / MiB)}`,
        ],
        [
          "V8 heap used: before (after GC) / peak / after the run (after GC) (MiB); growth during the run",
          `${round(mem0.heapUsed / MiB)} / ${round(peakHeap / MiB)} / ${round(mem1.heapUsed / MiB)}; +${round((peakHeap - mem0.heapUsed) / MiB)}`,
        ],
        ["stand-in: statement POSTs", posts],
        [
          "stand-in: monitoring requests (list + per-statement GET)",
          `${monitoring} (${listReqs} + ${getReqs})`,
        ],
        ["monitoring requests per completed statement", round(monitoring / completed, 3)],
        [
          "client requests per completed statement (all routes)",
          round((stats.requests - req0) / completed, 3),
        ],
        ["monitor ticks (one list request each) / fallbacks", `${ticks} / ${fallbacks}`],
      ],
    },
  ];
  return {
    env: { python: null, livyUrl: null },
    params: {
      statements: total,
      sessions: nSessions,
      maxInFlightPerSession: perSession,
      maxQueue: 1000,
      statementRunMs: runMs,
      code: CODE,
    },
    results: {
      completed,
      wrong,
      failed,
      wallS: round(wallS),
      throughputPerS: round(throughput),
      latencyMs: roundSummary(l),
      acceptedToResultMs: roundSummary(li),
      memory: {
        rssBeforeMiB: round(mem0.rss / MiB),
        rssPeakMiB: round(peakRss / MiB),
        rssAfterMiB: round(mem1.rss / MiB),
        heapBeforeMiB: round(mem0.heapUsed / MiB),
        heapPeakMiB: round(peakHeap / MiB),
        heapAfterMiB: round(mem1.heapUsed / MiB),
      },
      standinRoutes: counters.routes,
      monitoringRequests: monitoring,
      monitoringPerStatement: round(monitoring / completed, 4),
      clientRequestsPerStatement: round((stats.requests - req0) / completed, 4),
      monitorTicks: ticks,
      fallbackRequests: fallbacks,
    },
    goals,
    tables,
    notes: [
      "The client runs in the benchmark's process: \"before\" is that process with the benchmark's own modules (test bed, Kubernetes client) loaded and the sessions open; the growth during the run is what 10,000 statements in flight through the pool cost.",
      "The stand-in is one Node process on the same 2 cores; it answers each request in well under a millisecond, so throughput here is bounded by the two processes' CPU, not by Livy.",
    ],
  };
}
