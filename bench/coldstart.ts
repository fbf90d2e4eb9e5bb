/**
 * coldstart: a LivySession applied against the real operator, timed stage by stage until its first
 * statement's result, then the same after an idle teardown (wake: the demand annotation). The operator's
 * Livy server URL template points at a real Livy (kwok runs no containers) or at the stand-in, which
 * starts a session in 300 ms and so isolates what the operator itself adds.
 *
 * Every time is the benchmark's own clock at the moment it observed the event: LivySessions and Deployments
 * through watches, the Livy session through polling Livy directly in parallel (every --poll-ms).
 */
import { ANNOTATION_DEMANDED_AT, FINALIZER, type LivySession, serverName } from "../src/api/index.ts";
import { CORE, resourcePath } from "../src/kube/client.ts";
import { LivyClient } from "../src/livy/index.ts";
import { type Args, type BenchBody, log } from "./lib/bench.ts";
import {
  applySession,
  createNamespace,
  type DeploymentLike,
  isIdle,
  isReady,
  leftovers,
  MANAGED,
  sessionPath,
  waitUntil,
  watchKind,
} from "./lib/kube.ts";
import { buildOperator, metricValue, Operator } from "./lib/operator.ts";
import { fmt, type Goal, marginBelow, type Table } from "./lib/report.ts";
import { median, round, roundSummary, summarize } from "./lib/stats.ts";
import { type Bed, testbed } from "./lib/testbed.ts";

/** Bench-clock times (performance.now(), ms) of one start, cold or wake. */
interface Timeline {
  kind: "cold" | "wake";
  t0: number;
  applied: number;
  startTimeBefore: string | undefined;
  attempt?: number;
  finalizer?: number;
  deployAdded?: number;
  deployAvailable?: number;
  livyCreated?: number;
  livyIdle?: number;
  ready?: number;
  result?: number;
  livyId?: number;
  /** Time Livy took to answer the operator's session lookup (GET /sessions or /sessions/{name}) and POST /sessions (ms). */
  livyAnswerMs?: number;
  /**
   * Time Livy spent running the operator's warm-up statement (its `started` → `completed`, on Livy's clock),
   * which lies between "Livy idle" and "Ready": Spark's work, not the operator's. 0 without a warm-up.
   */
  warmupRunMs?: number;
  /**
   * The operator's Kubernetes API requests from the demand to Ready seen (watches left out: they are
   * shared by all LivySessions), and its Livy requests over the same span.
   */
  kubeRequests?: number;
  livyRequests?: number;
  /**
   * The same span, only the requests that name this LivySession, its objects (`livy-<name>`) or its Livy
   * session (by id or name): what one start costs while earlier LivySessions of the run idle out beside
   * it. Requests naming no object (`POST events`, `GET /sessions`) are not in it.
   */
  ownKubeRequests?: number;
  ownLivyRequests?: number;
}

const STAGES = [
  ["operator: demand → Deployment applied", "applied", "deployAdded"],
  ["Kubernetes: Deployment applied → available", "deployAdded", "deployAvailable"],
  ["operator: Deployment available → Livy session created", "deployAvailable", "livyCreated"],
  ["Livy+Spark: session created → idle", "livyCreated", "livyIdle"],
  ["operator: Livy idle → Ready in status", "livyIdle", "ready"],
  ["client+Livy: Ready → first result (1 + 1)", "ready", "result"],
] as const;

type Key = Exclude<
  keyof Timeline,
  | "kind"
  | "startTimeBefore"
  | "livyId"
  | "livyAnswerMs"
  | "warmupRunMs"
  | "kubeRequests"
  | "livyRequests"
  | "ownKubeRequests"
  | "ownLivyRequests"
>;

function span(t: Timeline, a: Key, b: Key): number {
  const x = t[a];
  const y = t[b];
  return x === undefined || y === undefined ? Number.NaN : y - x;
}

/** What the operator's three stages take (the brief's formula is reported beside it). */
function operatorGross(t: Timeline): number {
  return (
    span(t, "applied", "deployAdded") +
    span(t, "deployAvailable", "livyCreated") +
    span(t, "livyIdle", "ready")
  );
}
/**
 * What the operator adds: its three stages less the time Livy took to answer its list and create requests
 * and to run the warm-up statement (spec.warmup, on by default since issue 14).
 */
function operatorAdded(t: Timeline): number {
  return operatorGross(t) - (t.livyAnswerMs ?? 0) - (t.warmupRunMs ?? 0);
}
function formulaOverhead(t: Timeline): number {
  if (t.ready === undefined || t.deployAvailable === undefined || t.livyIdle === undefined) return Number.NaN;
  return t.ready - Math.max(t.deployAvailable, t.livyIdle);
}

interface TargetResult {
  target: "livy" | "standin";
  /** The commit whose operator ran. */
  commit: string;
  n: number;
  timelines: Timeline[];
  failures: string[];
  demandToReadyOperatorS: number;
  leftovers: unknown;
  /** The operator's requests from demand to Ready by route, summed over the starts of each kind. */
  routes: Record<"cold" | "wake", Record<string, number>>;
}

interface TargetOpts {
  n: number;
  wakes: number;
  idleTimeout: string;
  pollMs: number;
  sessionPollMs: number;
  mode: "js" | "ts";
}

/**
 * One target on each commit of `revs` (undefined: the commit the run began at). With more than one, each
 * commit's operator runs at once beside the other, each watching a namespace of its own, and their starts
 * alternate (A B, B A, ...): both see the same machine, whatever else runs on it meanwhile. (One after the
 * other, a baseline and the change measured minutes apart were compared under different loads.)
 */
async function runTarget(
  bed: Bed,
  target: "livy" | "standin",
  opts: TargetOpts,
  revs: Array<string | undefined>,
): Promise<TargetResult[]> {
  if (target === "standin") await bed.standin.reset();
  const lanes: Lane[] = [];
  for (const rev of revs) lanes.push(await startLane(bed, target, opts, rev, revs.length > 1));
  try {
    for (let i = 0; i < opts.n; i++)
      for (const lane of i % 2 === 0 ? lanes : [...lanes].reverse()) await lane.cycle(i);
  } finally {
    for (const lane of lanes) await lane.close();
  }
  const results: TargetResult[] = [];
  for (const lane of lanes) results.push(await lane.finish());
  return results;
}

interface Lane {
  /** Cold start `cold-<i>`, its wake when asked for, its deletion. */
  cycle(i: number): Promise<void>;
  close(): Promise<void>;
  finish(): Promise<TargetResult>;
}

async function startLane(
  bed: Bed,
  target: "livy" | "standin",
  opts: TargetOpts,
  rev: string | undefined,
  ownNamespace: boolean,
): Promise<Lane> {
  const livyUrl = target === "livy" ? bed.state.livyUrl : bed.state.standinUrl;
  if (!livyUrl) throw new Error("no real Livy in the test bed");
  const ns = await createNamespace(bed.kube, `bench-cold-${target}`);
  const op = await Operator.start({
    kubeconfig: bed.state.kubeconfig,
    kubeOrigin: bed.state.apiserverUrl,
    serverUrlTemplate: livyUrl,
    logDir: `${bed.state.stateDir}/logs`,
    name: `coldstart-${target}`,
    sessionPollIntervalMs: opts.sessionPollMs,
    mode: opts.mode,
    ...(rev ? { rev } : {}),
    ...(ownNamespace ? { extraArgs: ["--namespaces", ns] } : {}),
    countByObject: true,
  });
  const current = new Map<string, Timeline>();
  const routes: TargetResult["routes"] = { cold: {}, wake: {} };
  const seenLivyIds = new Set<number>();
  const sessions = watchKind<LivySession>(bed.kube, sessionPath(ns), (_type, o, at) => {
    const t = current.get(o.metadata.name);
    if (!t || at < t.applied) return;
    if (t.attempt === undefined && o.status?.startTime && o.status.startTime !== t.startTimeBefore)
      t.attempt = at;
    if (t.ready === undefined && isReady(o)) t.ready = at;
    if (t.finalizer === undefined && (o.metadata.finalizers ?? []).includes(FINALIZER)) t.finalizer = at;
  });
  const deployments = watchKind<DeploymentLike>(
    bed.kube,
    resourcePath(CORE.deployments, ns),
    (type, o, at) => {
      const owner = o.metadata?.labels?.["livy.dev/session"] ?? "";
      const t = current.get(owner);
      if (!t || type === "delete" || o.metadata?.deletionTimestamp) return;
      if (t.deployAdded === undefined) t.deployAdded = at;
      if (t.deployAvailable === undefined && (o.status?.availableReplicas ?? 0) >= 1) t.deployAvailable = at;
    },
    MANAGED,
  );
  await Promise.all([sessions.waitForSync(), deployments.waitForSync()]);
  const client = new LivyClient({ baseUrl: livyUrl, timeoutMs: 60_000 });
  const timelines: Timeline[] = [];
  const failures: string[] = [];
  const m0 = await op.metrics();

  /** Polls Livy directly until this start's session is idle. */
  const pollLivy = async (name: string, t: Timeline, stop: AbortSignal) => {
    const prefix = `${ns}.${name}.`;
    while (!stop.aborted && t.livyIdle === undefined) {
      try {
        if (t.livyId === undefined) {
          const res = await fetch(`${livyUrl}/sessions?size=10000`, { signal: stop });
          const at = performance.now();
          const list = (await res.json()) as {
            sessions: Array<{ id: number; name: string | null; state: string }>;
          };
          const mine = list.sessions.find((s) => s.name?.startsWith(prefix) && !seenLivyIds.has(s.id));
          if (mine) {
            t.livyId = mine.id;
            seenLivyIds.add(mine.id);
            t.livyCreated = at;
            if (mine.state === "idle") t.livyIdle = at;
          }
        } else {
          const res = await fetch(`${livyUrl}/sessions/${t.livyId}/state`, { signal: stop });
          const at = performance.now();
          const body = (await res.json()) as { state?: string };
          if (body.state === "idle") t.livyIdle = at;
        }
      } catch {
        // aborted or a transient failure: the next poll decides
      }
      await new Promise((r) => setTimeout(r, opts.pollMs));
    }
  };

  const measure = async (name: string, kind: "cold" | "wake", demand: () => Promise<unknown>) => {
    const before = sessions.get(`${ns}/${name}`);
    const t: Timeline = {
      kind,
      t0: performance.now(),
      applied: Number.POSITIVE_INFINITY,
      startTimeBefore: before?.status?.startTime,
    };
    current.set(name, t);
    const stop = new AbortController();
    const poller = pollLivy(name, t, stop.signal);
    const req0 = await op.requests();
    const lat0 = req0.latency;
    t.t0 = performance.now();
    await demand();
    t.applied = performance.now();
    const timeoutMs = target === "livy" ? 300_000 : 60_000;
    const ok = await waitUntil(`${name} Ready (${kind})`, () => t.ready !== undefined, timeoutMs, 5);
    if (!ok) {
      failures.push(
        `${name} ${kind}: not Ready within ${timeoutMs} ms: ${JSON.stringify(sessions.get(`${ns}/${name}`)?.status)}`,
      );
      stop.abort();
      await poller;
      return t;
    }
    const atReady = await op.requests();
    const delta = (prefix: string) =>
      Object.entries(atReady.counts)
        .filter(([k]) => k.startsWith(prefix) && !k.endsWith("(watch)"))
        .reduce((a, [k, v]) => a + v - (req0.counts[k] ?? 0), 0);
    t.kubeRequests = delta("kube ");
    t.livyRequests = delta("livy ");
    for (const [k, v] of Object.entries(atReady.counts))
      if (!k.endsWith("(watch)") && v > (req0.counts[k] ?? 0))
        routes[kind][k] = (routes[kind][k] ?? 0) + v - (req0.counts[k] ?? 0);
    const ls = sessions.get(`${ns}/${name}`);
    const id = ls?.status?.livySessionId;
    // this LivySession's own: its objects by namespace/name, its Livy session by id or by name (ns.name.…)
    const own = (k: string) => {
      const obj = k.slice(k.lastIndexOf(" ") + 1);
      if (k.startsWith("kube ")) return obj === `${ns}/${name}` || obj === `${ns}/${serverName(name)}`;
      return (id !== undefined && id !== null && obj === String(id)) || obj.startsWith(`${ns}.${name}.`);
    };
    // an operator whose preloaded counter predates the count by object (a baseline commit's) has none
    const ownDelta = (prefix: string) =>
      atReady.byObject === undefined
        ? Number.NaN
        : Object.entries(atReady.byObject)
            .filter(([k]) => k.startsWith(prefix) && own(k))
            .reduce((a, [k, v]) => a + v - (req0.byObject?.[k] ?? 0), 0);
    t.ownKubeRequests = ownDelta("kube ");
    t.ownLivyRequests = ownDelta("livy ");
    try {
      if (id === undefined || id === null) throw new Error("Ready without livySessionId");
      // before the first statement of ours: what the session ran before Ready is the operator's warm-up
      const before = await client.listStatements(id);
      t.warmupRunMs = before.statements.reduce(
        (a, st) => a + (st.started && st.completed ? st.completed - st.started : 0),
        0,
      );
      const res = await client.session(id).run("1 + 1", { timeoutMs: 120_000 });
      t.result = performance.now();
      if (res.text?.trim() !== "2") failures.push(`${name} ${kind}: 1 + 1 gave ${JSON.stringify(res.text)}`);
    } catch (err) {
      failures.push(`${name} ${kind}: first statement failed: ${String(err)}`);
    }
    const lat1 = (await op.requests()).latency;
    t.livyAnswerMs = ["livy GET /sessions", "livy GET /sessions/:name", "livy POST /sessions"].reduce(
      (a, k) => a + (lat1[k]?.sumMs ?? 0) - (lat0[k]?.sumMs ?? 0),
      0,
    );
    // the poller may still wait for an idle it missed (a state it never saw): give it a moment
    await waitUntil("direct Livy observation", () => t.livyIdle !== undefined, 2_000, 5);
    stop.abort();
    await poller;
    timelines.push(t);
    const parts = STAGES.map(([, a, b]) => `${fmt(span(t, a, b))}`).join(" / ");
    log(`${target} ${op.commit} ${name} ${kind}: ${parts} ms; operator added ${fmt(operatorAdded(t))} ms`);
    return t;
  };

  const spec = { kind: "pyspark", idleTimeout: opts.idleTimeout, startupTimeout: "10m" };
  const cycle = async (i: number) => {
    const name = `cold-${i}`;
    await measure(name, "cold", () => applySession(bed.kube, ns, name, spec));
    if (i < opts.wakes) {
      const idle = await waitUntil(
        `${name} idle teardown`,
        () => isIdle(sessions.get(`${ns}/${name}`)),
        120_000 + 1_000 * Number.parseInt(opts.idleTimeout, 10),
        20,
      );
      if (idle) {
        // the Deployment must be gone before the wake, or the wake would find the old server
        await waitUntil(
          `${name} server removed`,
          async () => (await leftovers(bed.kube, ns)).deployments === 0,
          60_000,
          100,
        );
        await measure(name, "wake", () =>
          bed.kube.mergePatch(sessionPath(ns, name), {
            metadata: { annotations: { [ANNOTATION_DEMANDED_AT]: new Date().toISOString() } },
          }),
        );
      } else failures.push(`${name}: never idled out`);
    }
    current.delete(name);
    await bed.kube.delete(sessionPath(ns, name));
    await waitUntil(`${name} deleted`, async () => !sessions.get(`${ns}/${name}`), 120_000, 50);
  };
  return { cycle, close: () => client.close(), finish };

  async function finish(): Promise<TargetResult> {
    const m1 = await op.metrics();
    const sum = (m: string) => metricValue(m, "livy_operator_demand_to_ready_seconds_sum");
    const cnt = (m: string) => metricValue(m, "livy_operator_demand_to_ready_seconds_count");
    const demandToReadyOperatorS = (sum(m1) - sum(m0)) / Math.max(1, cnt(m1) - cnt(m0));
    await sessions.stop();
    await deployments.stop();
    await op.stop();
    const left = await leftovers(bed.kube, ns);
    await bed.kube.delete(`/api/v1/namespaces/${ns}`);
    return {
      target,
      commit: op.commit,
      n: opts.n,
      timelines,
      failures,
      demandToReadyOperatorS,
      leftovers: left,
      routes,
    };
  }
}

/** The first operator stage of a cold start, split: its own pass that adds the finalizer, then the start pass. */
const FINALIZER_SPLIT = [
  ["  of which: apply → finalizer added", "applied", "finalizer"],
  [
    "  of which: finalizer added → Deployment applied (ConfigMap, Service, Deployment)",
    "finalizer",
    "deployAdded",
  ],
] as const;

function stageTable(r: TargetResult, kind: "cold" | "wake"): Table | null {
  const ts = r.timelines.filter((t) => t.kind === kind);
  if (!ts.length) return null;
  const row = (label: string, v: number[]) => {
    const s = summarize(v.filter(Number.isFinite));
    return [label, round(s.p50), round(s.min), round(s.max)];
  };
  return {
    title: `${r.target === "livy" ? "Real Livy 0.9 / Spark 3.5.7" : "Livy stand-in (session start 300 ms)"}, operator of ${r.commit}: ${kind === "cold" ? "cold start from apply" : "wake after idle teardown"}, N = ${ts.length} (ms)`,
    columns: ["stage", "median", "min", "max"],
    rows: [
      ...STAGES.flatMap(([label, a, b]) => [
        row(
          label,
          ts.map((t) => span(t, a, b)),
        ),
        ...(kind === "cold" && a === "applied"
          ? FINALIZER_SPLIT.map(([l, x, y]) =>
              row(
                l,
                ts.map((t) => span(t, x, y)),
              ),
            )
          : []),
      ]),
      row(
        "total: demand → first result",
        ts.map((t) => span(t, "applied", "result")),
      ),
      row("operator's three stages (gross)", ts.map(operatorGross)),
      row(
        "  less Livy answering its GET /sessions + POST /sessions",
        ts.map((t) => t.livyAnswerMs ?? Number.NaN),
      ),
      row(
        "  less Livy running the warm-up statement (started → completed)",
        ts.map((t) => t.warmupRunMs ?? Number.NaN),
      ),
      row("**operator adds** (net)", ts.map(operatorAdded)),
      row("Ready − max(Deployment available, Livy idle)", ts.map(formulaOverhead)),
      row(
        "operator's API requests, demand → Ready (count, watches left out)",
        ts.map((t) => t.kubeRequests ?? Number.NaN),
      ),
      row(
        "  of them naming this LivySession or its objects (its own start's; events not named)",
        ts.map((t) => t.ownKubeRequests ?? Number.NaN),
      ),
      row(
        "operator's Livy requests, demand → Ready (count)",
        ts.map((t) => t.livyRequests ?? Number.NaN),
      ),
      row(
        "  of the Livy requests, naming its Livy session",
        ts.map((t) => t.ownLivyRequests ?? Number.NaN),
      ),
    ],
  };
}

export async function coldstart(args: Args): Promise<BenchBody> {
  const which = args.str("target", "both");
  const n = args.num("n", 3);
  const nStandin = args.num("n-standin", 20);
  const mode = args.str("operator", "js") === "ts" ? "ts" : "js";
  const bed = await testbed({ needLivy: which !== "standin" });
  // --baseline REV: each target on REV's operator and on HEAD's, side by side, their starts alternating
  const baseline = args.str("baseline", "");
  const revs = baseline ? [baseline, undefined] : [undefined];
  const results: TargetResult[] = [];
  if (which === "standin" || which === "both")
    results.push(
      ...(await runTarget(
        bed,
        "standin",
        {
          n: nStandin,
          wakes: args.num("wakes-standin", nStandin),
          idleTimeout: args.str("idle-timeout-standin", "2s"),
          pollMs: args.num("poll-ms-standin", 5),
          sessionPollMs: args.num("session-poll-ms", 500),
          mode,
        },
        revs,
      )),
    );
  if (which === "livy" || which === "both")
    results.push(
      ...(await runTarget(
        bed,
        "livy",
        {
          n,
          wakes: args.num("wakes", n),
          idleTimeout: args.str("idle-timeout", "10s"),
          pollMs: args.num("poll-ms", 20),
          sessionPollMs: args.num("session-poll-ms", 500),
          mode,
        },
        revs,
      )),
    );
  const tables: Table[] = [];
  const goals: Goal[] = [];
  const summaries: Record<string, unknown> = {};
  for (const r of results) {
    for (const kind of ["cold", "wake"] as const) {
      const t = stageTable(r, kind);
      if (t) tables.push(t);
      const ts = r.timelines.filter((x) => x.kind === kind);
      if (!ts.length) continue;
      const added = median(ts.map(operatorAdded).filter(Number.isFinite));
      const formula = median(ts.map(formulaOverhead).filter(Number.isFinite));
      summaries[
        `${r.target}.${kind}${r.commit === results[results.length - 1]?.commit ? "" : `@${r.commit}`}`
      ] = {
        n: ts.length,
        operatorAddedMs: roundSummary(summarize(ts.map(operatorAdded).filter(Number.isFinite))),
        readyMinusMaxAvailableIdleMs: roundSummary(
          summarize(ts.map(formulaOverhead).filter(Number.isFinite)),
        ),
        demandToFirstResultMs: roundSummary(summarize(ts.map((t) => span(t, "applied", "result")))),
        kubeRequestsDemandToReady: roundSummary(summarize(ts.map((t) => t.kubeRequests ?? Number.NaN))),
        livyRequestsDemandToReady: roundSummary(summarize(ts.map((t) => t.livyRequests ?? Number.NaN))),
        stagesMs: Object.fromEntries(
          STAGES.map(([label, a, b]) => [label, roundSummary(summarize(ts.map((t) => span(t, a, b))))]),
        ),
      };
      goals.push({
        goal: `operator overhead, ${r.target === "livy" ? "real Livy" : "stand-in"}, ${kind}, operator of ${r.commit}`,
        target: "≤ 50 ms at the median (issue 14)",
        measured: `${fmt(added)} ms net (three stages less Livy's own answers); Ready − max(available, idle) ${fmt(formula)} ms`,
        met: Number.isFinite(added) ? added <= 50 : null,
        margin: marginBelow(added, 50, "ms"),
      });
    }
  }
  if (baseline) {
    const byKey = new Map(results.map((r) => [`${r.target} ${r.commit}`, r]));
    const commits = [...new Set(results.map((r) => r.commit))];
    const rows: Array<Array<string | number>> = [];
    for (const target of ["standin", "livy"] as const)
      for (const kind of ["cold", "wake"] as const) {
        const med = (c: string | undefined) => {
          const ts = byKey.get(`${target} ${c}`)?.timelines.filter((t) => t.kind === kind) ?? [];
          return ts.length ? round(median(ts.map(operatorAdded).filter(Number.isFinite))) : Number.NaN;
        };
        const [a, b] = [med(commits[0]), med(commits[1])];
        if (Number.isFinite(a) || Number.isFinite(b))
          rows.push([
            `${target === "livy" ? "real Livy" : "stand-in"}, ${kind}`,
            a,
            b,
            a ? round(b / a, 2) : "",
          ]);
        const reqs = (c: string | undefined, own = false) => {
          const ts = byKey.get(`${target} ${c}`)?.timelines.filter((t) => t.kind === kind) ?? [];
          const v = ts
            .map((t) => (own ? t.ownKubeRequests : t.kubeRequests) ?? Number.NaN)
            .filter(Number.isFinite);
          return v.length ? round(v.reduce((x, y) => x + y, 0) / v.length) : Number.NaN;
        };
        const [ra, rb] = [reqs(commits[0]), reqs(commits[1])];
        if (Number.isFinite(ra) || Number.isFinite(rb))
          rows.push([
            `${target === "livy" ? "real Livy" : "stand-in"}, ${kind}: API requests demand → Ready (mean)`,
            ra,
            rb,
            ra ? round(rb / ra, 2) : "",
          ]);
        const [oa, ob] = [reqs(commits[0], true), reqs(commits[1], true)];
        if (Number.isFinite(oa) || Number.isFinite(ob))
          rows.push([
            `${target === "livy" ? "real Livy" : "stand-in"}, ${kind}: of them naming this LivySession or its objects (mean)`,
            oa,
            ob,
            oa ? round(ob / oa, 2) : "",
          ]);
      }
    tables.unshift({
      title: "Operator adds (net, median ms) and its API requests, side by side in this run",
      columns: ["target", `${commits[0]} (baseline)`, `${commits[1]}`, "ratio"],
      rows,
    });
  }
  return {
    env: { python: bed.state.python, livyUrl: bed.state.livyUrl },
    params: {
      target: which,
      n,
      nStandin,
      operator: `${mode === "js" ? `commit ${await buildOperator()}, compiled, as the image runs it` : "the work tree's src/ through type stripping"}; --session-poll-interval-ms 500 --concurrency 16 (defaults otherwise)`,
      spec: "kind pyspark, idleTimeout 10s (real) / 2s (stand-in), startupTimeout 10m",
    },
    results: {
      summaries,
      runs: results.map((r) => ({
        target: r.target,
        failures: r.failures,
        operatorDemandToReadyMeanS: round(r.demandToReadyOperatorS),
        // per start: the routes' counts divided by the starts of that kind
        requestsPerStartByRoute: Object.fromEntries(
          (["cold", "wake"] as const).map((kind) => {
            const starts = Math.max(1, r.timelines.filter((t) => t.kind === kind).length);
            return [
              kind,
              Object.fromEntries(
                Object.entries(r.routes[kind])
                  .sort(([a], [b]) => a.localeCompare(b))
                  .map(([k, v]) => [k, round(v / starts)]),
              ),
            ];
          }),
        ),
        leftovers: r.leftovers,
        timelines: r.timelines.map((t) => ({
          kind: t.kind,
          ...Object.fromEntries(STAGES.map(([label, a, b]) => [label, round(span(t, a, b))])),
          operatorGrossMs: round(operatorGross(t)),
          livyAnswerMs: round(t.livyAnswerMs ?? Number.NaN),
          warmupRunMs: round(t.warmupRunMs ?? Number.NaN),
          kubeRequests: t.kubeRequests,
          livyRequests: t.livyRequests,
          ownKubeRequests: t.ownKubeRequests,
          ownLivyRequests: t.ownLivyRequests,
          operatorAddedMs: round(operatorAdded(t)),
          readyMinusMaxMs: round(formulaOverhead(t)),
          totalMs: round(span(t, "applied", "result")),
        })),
      })),
    },
    goals,
    tables,
    notes: [
      'Stages are observed from outside: LivySession and Deployment changes through watches, the Livy session by polling Livy\'s REST API directly every 5 ms (stand-in) / 20 ms (real Livy). A poll sees a Livy change up to one interval late, which lengthens "available → created" and shortens "idle → Ready" by the same amount; their sum, part of "operator adds", is unaffected on average.',
      "\"Operator adds\" = (demand → Deployment applied) + (Deployment available → Livy session created) + (Livy idle → Ready in status), less the time Livy itself took to answer the operator's GET /sessions and POST /sessions (timed inside the operator process; real Livy's POST /sessions takes from tens of ms to seconds) and to run the operator's warm-up statement (its started → completed as Livy lists it before the first statement of ours). \"Ready − max(available, idle)\" is the brief's formula: it counts only the last operator stage, because the Livy session is created only after the Deployment is available.",
      "Pods run under kwok (no containers): a Deployment turns available once kwok marks its pod Ready; the operator's server URL template points every LivySession at the one test-bed Livy (or the stand-in).",
      ...results.flatMap((r) => r.failures.map((f) => `${r.target} failure: ${f}`)),
    ],
  };
}
