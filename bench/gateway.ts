/**
 * gateway: what the gateway costs and what it holds, side by side in one run.
 *   latency  a Ready session, the same requests straight to Livy and through the gateway, interleaved:
 *            GET /sessions/{id}/state (a read) and POST .../statements (a statement, marker and lane included);
 *            on the stand-in with zero delay (the gateway's own cost) and on real Livy.
 *   wake     a LivySession parked for idleness, --held statements sent to it at once: each one's wait, its
 *            X-Livy-Gateway-Held-Ms, and whether all succeeded; on the stand-in and on real Livy.
 *   memory   the gateway's RSS and heap with no LivySession and with --sessions (1000) of them cached,
 *            after one authorized request to each (decision caches filled).
 * The gateway and the operator are the last commit's, compiled as shipped (bench/lib/operator.ts).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "undici";
import type { LivySession } from "../src/api/index.ts";
import { type Args, type BenchBody, log } from "./lib/bench.ts";
import {
  applySession,
  boundedAll,
  createNamespace,
  isIdle,
  isReady,
  sessionPath,
  waitUntil,
} from "./lib/kube.ts";
import { buildDirOf, buildOperator, freePort, metricValue, Operator } from "./lib/operator.ts";
import { fmt, type Table } from "./lib/report.ts";
import { round, roundSummary, type Summary, summarize } from "./lib/stats.ts";
import { type Bed, testbed } from "./lib/testbed.ts";

class GatewayProc {
  readonly proc: ChildProcess;
  readonly url: string;
  readonly httpPort: number;
  readonly log: string;
  private constructor(proc: ChildProcess, port: number, httpPort: number, log: string) {
    this.proc = proc;
    this.url = `http://127.0.0.1:${port}`;
    this.httpPort = httpPort;
    this.log = log;
  }
  static async start(bed: Bed, name: string, args: string[] = []): Promise<GatewayProc> {
    const commit = await buildOperator();
    const [port, httpPort] = [await freePort(), await freePort()];
    const logDir = join(bed.state.stateDir, "logs");
    mkdirSync(logDir, { recursive: true });
    const log = join(logDir, `gateway-${name}-${Date.now()}.log`);
    const fd = openSync(log, "a");
    const proc = spawn(
      process.execPath,
      [
        join(buildDirOf(commit), "gateway", "main.js"),
        "--kubeconfig",
        bed.state.kubeconfig,
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
        "--http-host",
        "127.0.0.1",
        "--http-port",
        String(httpPort),
        "--log-level",
        "warn",
        ...args,
      ],
      { stdio: ["ignore", fd, fd] },
    );
    closeSync(fd);
    const g = new GatewayProc(proc, port, httpPort, log);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exitCode !== null)
        throw new Error(`gateway exited: ${readFileSync(log, "utf8").slice(-2000)}`);
      if ((await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => null))?.status === 200) break;
      if (Date.now() > deadline) throw new Error("gateway not ready within 60 s");
      await sleep(100);
    }
    return g;
  }
  memory(): { rssMiB: number; peakRssMiB: number } {
    const status = readFileSync(`/proc/${this.proc.pid}/status`, "utf8");
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
    return { rssMiB: kb("VmRSS") / 1024, peakRssMiB: kb("VmHWM") / 1024 };
  }
  async metrics(): Promise<string> {
    return await (await fetch(`http://127.0.0.1:${this.httpPort}/metrics`)).text();
  }
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once("exit", r));
    this.proc.kill("SIGTERM");
    await exited;
  }
}

/** A ServiceAccount with get/create on livysessions/proxy in `ns`, and a token for it. */
async function token(bed: Bed, ns: string): Promise<string> {
  const k = bed.kube;
  await k.create(`/api/v1/namespaces/${ns}/serviceaccounts`, { metadata: { name: "bench" } });
  await k.create(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
    metadata: { name: "bench" },
    rules: [
      { apiGroups: ["livy.dev"], resources: ["livysessions/proxy"], verbs: ["get", "create", "delete"] },
    ],
  });
  await k.create(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
    metadata: { name: "bench" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "bench" },
    subjects: [{ kind: "ServiceAccount", name: "bench", namespace: ns }],
  });
  const tr = await k.create<{ status: { token: string } }>(
    `/api/v1/namespaces/${ns}/serviceaccounts/bench/token`,
    {
      spec: { expirationSeconds: 7200 },
    },
  );
  return tr.status.token;
}

async function timed(
  pool: Pool,
  method: "GET" | "POST",
  path: string,
  headers: Record<string, string>,
  body?: string,
) {
  const t0 = performance.now();
  const res = await pool.request({ method, path, headers, ...(body ? { body } : {}) });
  const text = await res.body.text();
  const ms = performance.now() - t0;
  if (res.statusCode >= 300) throw new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 200)}`);
  return { ms, text, headers: res.headers };
}

interface Target {
  name: "standin" | "livy";
  url: string;
}

async function waitFor(bed: Bed, ns: string, name: string, pred: (o: LivySession) => boolean, ms: number) {
  const path = sessionPath(ns, name);
  const ok = await waitUntil(`${name}`, async () => pred(await bed.kube.get<LivySession>(path)), ms, 100);
  if (!ok) throw new Error(`${ns}/${name}: condition not reached within ${ms} ms`);
}

async function latency(bed: Bed, t: Target, gw: GatewayProc, ns: string, tok: string, n: number) {
  await applySession(bed.kube, ns, `lat-${t.name}`, {
    kind: "pyspark",
    idleTimeout: "1h",
    startupTimeout: "15m",
    failurePolicy: "Recover",
  });
  await waitFor(bed, ns, `lat-${t.name}`, isReady, 900_000);
  const ls = await bed.kube.get<LivySession>(sessionPath(ns, `lat-${t.name}`));
  const id = ls.status?.livySessionId ?? -1;
  const direct = new Pool(t.url, { connections: 4 });
  const gate = new Pool(gw.url, { connections: 4 });
  const prefix = `/namespaces/${ns}/livysessions/lat-${t.name}`;
  const json = { "content-type": "application/json", "x-requested-by": "bench" };
  const auth = { ...json, authorization: `Bearer ${tok}` };
  const samples = {
    directRead: [] as number[],
    gatewayRead: [] as number[],
    directPost: [] as number[],
    gatewayPost: [] as number[],
  };
  const body = JSON.stringify({ code: "1" });
  for (let i = 0; i < n + 20; i++) {
    const warm = i < 20;
    const r1 = await timed(direct, "GET", `/sessions/${id}/state`, json);
    const r2 = await timed(gate, "GET", `${prefix}/sessions/0/state`, auth);
    const r3 = await timed(direct, "POST", `/sessions/${id}/statements`, json, body);
    const r4 = await timed(gate, "POST", `${prefix}/sessions/0/statements`, auth, body);
    if (warm) continue;
    samples.directRead.push(r1.ms);
    samples.gatewayRead.push(r2.ms);
    samples.directPost.push(r3.ms);
    samples.gatewayPost.push(r4.ms);
    // real Livy runs each statement: let the queue drain now and then
    if (t.name === "livy" && i % 50 === 49) await sleep(200);
  }
  await direct.close();
  await gate.close();
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])) as Record<
    keyof typeof samples,
    Summary
  >;
}

async function wake(bed: Bed, t: Target, gw: GatewayProc, ns: string, tok: string, held: number) {
  const name = `wake-${t.name}`;
  await applySession(bed.kube, ns, name, {
    kind: "pyspark",
    idleTimeout: "2s",
    startupTimeout: "15m",
    failurePolicy: "Recover",
  });
  await waitFor(bed, ns, name, isReady, 900_000);
  await waitFor(bed, ns, name, isIdle, 120_000);
  const pool = new Pool(gw.url, { connections: held });
  const prefix = `/namespaces/${ns}/livysessions/${name}`;
  const headers = { "content-type": "application/json", authorization: `Bearer ${tok}`, prefer: "wait=900" };
  let readyAt = Number.NaN;
  const t0 = performance.now();
  const watch = (async () => {
    await waitUntil(
      `${name} Ready`,
      async () => isReady(await bed.kube.get<LivySession>(sessionPath(ns, name))),
      900_000,
      50,
    );
    readyAt = performance.now() - t0;
  })();
  const results = await Promise.all(
    Array.from({ length: held }, async (_, i) => {
      try {
        const r = await timed(
          pool,
          "POST",
          `${prefix}/sessions/0/statements`,
          headers,
          JSON.stringify({ code: `${i} + 1` }),
        );
        return {
          ok: true,
          ms: performance.now() - t0,
          heldMs: Number(r.headers["x-livy-gateway-held-ms"] ?? 0),
        };
      } catch (err) {
        return { ok: false, ms: performance.now() - t0, heldMs: 0, err: String(err) };
      }
    }),
  );
  await watch;
  await pool.close();
  const ok = results.filter((r) => r.ok);
  return {
    held,
    succeeded: ok.length,
    failed: results
      .filter((r) => !r.ok)
      .map((r) => (r as { err?: string }).err)
      .slice(0, 3),
    demandToReadyMs: round(readyAt),
    answeredMs: roundSummary(summarize(ok.map((r) => r.ms))),
    heldMs: roundSummary(summarize(ok.map((r) => r.heldMs))),
  };
}

async function memory(bed: Bed, sessions: number) {
  const ns = await createNamespace(bed.kube, "bench-gw-mem");
  const op = await Operator.start({
    kubeconfig: bed.state.kubeconfig,
    kubeOrigin: bed.state.apiserverUrl,
    serverUrlTemplate: bed.state.standinUrl,
    logDir: `${bed.state.stateDir}/logs`,
    name: "gateway-memory",
    extraArgs: ["--namespaces", ns],
    concurrency: 64,
  });
  const gw = await GatewayProc.start(bed, "memory", ["--namespaces", ns]);
  try {
    const tok = await token(bed, ns);
    const pool = new Pool(gw.url, { connections: 16 });
    await sleep(2_000);
    const empty = gw.memory();
    const heap0 = metricValue(await gw.metrics(), "nodejs_heap_size_used_bytes") / 2 ** 20;
    log(`memory: creating ${sessions} suspended LivySessions`);
    const names = Array.from({ length: sessions }, (_, i) => `m${i}`);
    await boundedAll(names, 32, async (n) => {
      await applySession(bed.kube, ns, n, { kind: "pyspark", suspend: true });
    });
    await waitUntil(
      "all cached",
      async () => metricValue(await gw.metrics(), "livy_gateway_livysessions") >= sessions,
      600_000,
      500,
    );
    // every LivySession once through the gateway: the parse and decision caches hold them all
    const errors = await boundedAll(names, 16, async (n) => {
      await timed(pool, "GET", `/namespaces/${ns}/livysessions/${n}/sessions/0`, {
        authorization: `Bearer ${tok}`,
      });
    });
    await pool.close();
    await sleep(2_000);
    const full = gw.memory();
    const heap = metricValue(await gw.metrics(), "nodejs_heap_size_used_bytes") / 2 ** 20;
    return {
      sessions,
      requestErrors: errors.length,
      rssMiB: { empty: round(empty.rssMiB), full: round(full.rssMiB), peak: round(full.peakRssMiB) },
      heapUsedMiB: { empty: round(heap0), full: round(heap) },
    };
  } finally {
    await gw.stop();
    await bed.kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
    await op.stop();
  }
}

export async function gateway(args: Args): Promise<BenchBody> {
  const n = args.num("n", 500);
  const held = args.num("held", 50);
  const sessions = args.num("sessions", 1000);
  const skipLivy = args.bool("no-livy");
  const bed = await testbed({ needLivy: !skipLivy });
  await bed.standin.reset();
  const targets: Target[] = [{ name: "standin", url: bed.state.standinUrl }];
  if (!skipLivy && bed.state.livyUrl) targets.push({ name: "livy", url: bed.state.livyUrl });
  const results: Record<string, unknown> = {};
  const tables: Table[] = [];
  const latRows: Table["rows"] = [];
  const wakeRows: Table["rows"] = [];
  for (const t of targets) {
    const ns = await createNamespace(bed.kube, `bench-gw-${t.name}`);
    const op = await Operator.start({
      kubeconfig: bed.state.kubeconfig,
      kubeOrigin: bed.state.apiserverUrl,
      serverUrlTemplate: t.url,
      logDir: `${bed.state.stateDir}/logs`,
      name: `gateway-${t.name}`,
      extraArgs: ["--namespaces", ns],
      sessionPollIntervalMs: 1_000,
    });
    const gw = await GatewayProc.start(bed, t.name, ["--namespaces", ns]);
    try {
      const tok = await token(bed, ns);
      log(`${t.name}: latency, ${n} rounds`);
      const lat = await latency(bed, t, gw, ns, tok, n);
      log(`${t.name}: ${held} statements to a parked session`);
      const w = await wake(bed, t, gw, ns, tok, held);
      results[t.name] = {
        latency: Object.fromEntries(Object.entries(lat).map(([k, v]) => [k, roundSummary(v)])),
        wake: w,
      };
      for (const [what, d, g] of [
        ["GET state", lat.directRead, lat.gatewayRead],
        ["POST statement", lat.directPost, lat.gatewayPost],
      ] as const) {
        latRows.push([
          t.name,
          what,
          fmt(round(d.p50)),
          fmt(round(g.p50)),
          fmt(round(g.p50 - d.p50)),
          fmt(round(d.p99)),
          fmt(round(g.p99)),
          fmt(round(g.p99 - d.p99)),
        ]);
      }
      wakeRows.push([
        t.name,
        held,
        w.succeeded,
        fmt(w.demandToReadyMs / 1000),
        fmt(w.answeredMs.p50 / 1000),
        fmt(w.answeredMs.max / 1000),
        fmt(w.heldMs.p50 / 1000),
      ]);
    } finally {
      await gw.stop();
      await bed
        .kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=120s"])
        .catch(() => "");
      await op.stop();
      await bed.kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
    }
  }
  tables.push({
    title: "Added latency on a Ready session (ms; same requests, interleaved, keep-alive)",
    columns: [
      "Livy",
      "request",
      "direct p50",
      "gateway p50",
      "added p50",
      "direct p99",
      "gateway p99",
      "added p99",
    ],
    rows: latRows,
  });
  tables.push({
    title: "Statements sent at once to a parked LivySession (s from the first send)",
    columns: ["Livy", "sent", "succeeded", "demand → Ready", "answered p50", "answered max", "held p50"],
    rows: wakeRows,
  });
  log(`memory: ${sessions} LivySessions`);
  const mem = await memory(bed, sessions);
  results.memory = mem;
  tables.push({
    title: `Gateway memory with 0 and ${sessions} LivySessions cached (MiB)`,
    columns: ["", "RSS", "heap used"],
    rows: [
      ["no LivySession", fmt(mem.rssMiB.empty), fmt(mem.heapUsedMiB.empty)],
      [`${sessions} LivySessions, each requested once`, fmt(mem.rssMiB.full), fmt(mem.heapUsedMiB.full)],
      ["peak RSS", fmt(mem.rssMiB.peak), ""],
    ],
  });
  return {
    params: { n, held, sessions, targets: targets.map((t) => t.name) },
    results,
    goals: [],
    tables,
    notes: [
      "direct: the same request to Livy's own URL (status.serverURL) on a keep-alive pool; gateway: through the gateway with a ServiceAccount token (TokenReview and SubjectAccessReview answered from the gateway's caches after the first request).",
      "POST through the gateway includes the request marker, the session's lane and the rewrite of the answer.",
      `memory: suspended LivySessions (no servers), each requested once through the gateway; ${mem.requestErrors} request errors.`,
    ],
    env: { python: bed.state.python, livyUrl: bed.state.livyUrl },
  };
}
