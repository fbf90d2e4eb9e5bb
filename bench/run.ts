/**
 * `npm run bench`: the Livy client against the PyPI `livy` client (pylivy) and a naive poller that sends one
 * GET per statement per tick, side by side on the same real Livy sessions, plus the client's own overhead
 * against the stand-in with zero delay. Prints a table and writes bench/results/latest.json.
 *
 *   npm run bench                          # starts a Livy server from the test bed's install if there is one
 *   npm run bench -- --livy-url URL        # an already running Livy (its sessions are created and deleted)
 *   npm run bench -- --no-livy             # the stand-in part only
 * Options: --trivial N (round trips, 50), --batch N (statements, 200), --sessions N (4), --naive-interval-ms (10).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LivyClient, SessionPool } from "../src/livy/index.ts";
import { startStandin } from "../test/standin/server.ts";
import { livyInstallPaths, livyServerCommand, waitForLivy } from "../test/testbed/livy.ts";
import { REPO_ROOT } from "../test/testbed/paths.ts";
import { freePort, startProcess, stopProcess } from "../test/testbed/process.ts";
import { NaivePoller } from "./naive.ts";

const { values } = parseArgs({
  options: {
    "livy-url": { type: "string" },
    "no-livy": { type: "boolean", default: false },
    trivial: { type: "string", default: "50" },
    batch: { type: "string", default: "200" },
    sessions: { type: "string", default: "4" },
    "naive-interval-ms": { type: "string", default: "10" },
  },
});
const TRIVIAL = Number(values.trivial);
const BATCH = Number(values.batch);
const SESSIONS = Number(values.sessions);
const NAIVE_MS = Number(values["naive-interval-ms"]);
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

interface Dist {
  n: number;
  p50: number;
  p99: number;
  mean: number;
}

function dist(ms: number[]): Dist {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
  return { n: s.length, p50: at(0.5), p99: at(0.99), mean: s.reduce((a, b) => a + b, 0) / s.length };
}

interface Measurement {
  trivial: Dist;
  trivialRequestsPerStatement: number;
  batchWallMs: number;
  batchRequestsPerStatement: number;
  /** Only for this client: list requests per monitoring tick of a busy session, and per-statement fallbacks. */
  monitor?: {
    listRequests: number;
    ticks: number;
    requestsPerTickPerSession: number;
    fallbackRequests: number;
  };
  errors?: string[];
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const v = await fn();
  return [v, performance.now() - t];
}

async function ours(
  url: string,
  ids: number[],
  batchCode: string,
  trivialRuns: number,
): Promise<Measurement> {
  const client = new LivyClient({ baseUrl: url });
  try {
    const sessions = ids.map((id) => client.session(id));
    const first = sessions[0];
    if (!first) throw new Error("no session");
    for (let i = 0; i < 3; i++) await first.run("1 + 1");
    let before = client.stats().requests;
    const times: number[] = [];
    for (let i = 0; i < trivialRuns; i++) {
      const [r, ms] = await timed(() => first.run("1 + 1"));
      if (r.text !== "2") throw new Error(`1 + 1 gave ${JSON.stringify(r)}`);
      times.push(ms);
    }
    const trivialRequests = client.stats().requests - before;
    const pool = new SessionPool(sessions);
    before = client.stats().requests;
    const listBefore = client.stats().byRoute["GET /sessions/:id/statements"] ?? 0;
    const ticksBefore = sessions.reduce((a, s) => a + s.monitorStats().ticks, 0);
    const fallbackBefore = sessions.reduce((a, s) => a + s.monitorStats().fallbackRequests, 0);
    const [, wall] = await timed(() => Promise.all(Array.from({ length: BATCH }, () => pool.run(batchCode))));
    const listRequests = (client.stats().byRoute["GET /sessions/:id/statements"] ?? 0) - listBefore;
    const ticks = sessions.reduce((a, s) => a + s.monitorStats().ticks, 0) - ticksBefore;
    return {
      trivial: dist(times),
      trivialRequestsPerStatement: trivialRequests / trivialRuns,
      batchWallMs: wall,
      batchRequestsPerStatement: (client.stats().requests - before) / BATCH,
      monitor: {
        listRequests,
        ticks,
        requestsPerTickPerSession: listRequests / ticks,
        fallbackRequests:
          sessions.reduce((a, s) => a + s.monitorStats().fallbackRequests, 0) - fallbackBefore,
      },
    };
  } finally {
    await client.close();
  }
}

async function naive(
  url: string,
  ids: number[],
  batchCode: string,
  trivialRuns: number,
): Promise<Measurement> {
  const poller = new NaivePoller(url, NAIVE_MS);
  try {
    const first = ids[0] ?? 0;
    for (let i = 0; i < 3; i++) await poller.run(first, "1 + 1");
    let before = poller.requests;
    const times: number[] = [];
    for (let i = 0; i < trivialRuns; i++) times.push((await timed(() => poller.run(first, "1 + 1")))[1]);
    const trivialRequests = poller.requests - before;
    before = poller.requests;
    const per = Math.floor(BATCH / ids.length);
    const [, wall] = await timed(() =>
      Promise.all(
        ids.map(async (id) => {
          // Submitted in order per session, then each statement polled on its own.
          const sids: number[] = [];
          for (let i = 0; i < per; i++) sids.push(await poller.submit(id, batchCode));
          await Promise.all(sids.map((sid) => poller.wait(id, sid)));
        }),
      ),
    );
    return {
      trivial: dist(times),
      trivialRequestsPerStatement: trivialRequests / trivialRuns,
      batchWallMs: wall,
      batchRequestsPerStatement: (poller.requests - before) / (per * ids.length),
    };
  } finally {
    await poller.close();
  }
}

async function pylivy(python: string, url: string, ids: number[], batchCode: string): Promise<Measurement> {
  const arg = JSON.stringify({ url, sessions: ids, trivial: TRIVIAL, batch: BATCH, batchCode });
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(python, [join(REPO_ROOT, "bench", "pylivy_bench.py"), arg], {
      stdio: ["ignore", "pipe", 2],
    });
    let text = "";
    child.stdout?.on("data", (c: Buffer) => {
      text += c.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(text) : reject(new Error(`pylivy bench exited ${code}`)),
    );
  });
  const r = JSON.parse(out) as {
    trivialMs: number[];
    trivialRequests: number;
    batchWallMs: number;
    batchStatements: number;
    batchRequests: number;
    errors: string[];
  };
  return {
    trivial: dist(r.trivialMs),
    trivialRequestsPerStatement: r.trivialRequests / r.trivialMs.length,
    batchWallMs: r.batchWallMs,
    batchRequestsPerStatement: r.batchRequests / r.batchStatements,
    errors: r.errors,
  };
}

async function createSessions(url: string, n: number, timeoutMs: number): Promise<number[]> {
  const client = new LivyClient({ baseUrl: url });
  try {
    const created = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        client.createSession({ kind: "pyspark", name: `bench-${Date.now()}-${i}` }),
      ),
    );
    const ids = created.map((s) => s.id);
    await Promise.all(ids.map((id) => client.session(id).waitForIdle({ timeoutMs })));
    // The first Spark job of a session is slow (JIT, class loading): keep it out of every contender's numbers.
    await Promise.all(ids.map((id) => client.session(id).run("spark.range(10).count()", { timeoutMs })));
    return ids;
  } finally {
    await client.close();
  }
}

async function deleteSessions(url: string, ids: number[]): Promise<void> {
  const client = new LivyClient({ baseUrl: url });
  await Promise.all(ids.map((id) => client.deleteSession(id).catch(() => {})));
  await client.close();
}

async function standinPart(): Promise<Record<string, Measurement>> {
  const standin = await startStandin({ sessionStartupMs: 0, blockingSleep: false });
  try {
    const ids = await createSessions(standin.url, SESSIONS, 10_000);
    // Zero delay for the round trips: what remains is the client's own overhead (and the loopback HTTP).
    // The batch statements take 20 ms each, so several are in flight per session and ticks can be counted.
    const overhead = await ours(standin.url, ids, "1 + 1", 300);
    const naiveOverhead = await naive(standin.url, ids, "1 + 1", 300);
    standin.control.configure({ statementRunMs: 20 });
    const batchOurs = await ours(standin.url, ids, "spark.range(1000).count()", 10);
    const batchNaive = await naive(standin.url, ids, "spark.range(1000).count()", 10);
    return {
      ours: {
        ...batchOurs,
        trivial: overhead.trivial,
        trivialRequestsPerStatement: overhead.trivialRequestsPerStatement,
      },
      naive: {
        ...batchNaive,
        trivial: naiveOverhead.trivial,
        trivialRequestsPerStatement: naiveOverhead.trivialRequestsPerStatement,
      },
    };
  } finally {
    await standin.close();
  }
}

async function livyPart(): Promise<
  { url: string; results: Record<string, Measurement> } | { skipped: string }
> {
  if (values["no-livy"]) return { skipped: "--no-livy" };
  const install = livyInstallPaths();
  let url = values["livy-url"] ?? process.env.LIVY_URL;
  let stop: (() => Promise<void>) | undefined;
  if (!url) {
    if (!existsSync(join(install.livyHome, ".complete"))) {
      return {
        skipped: `no Livy install in ${install.livyHome}: run \`npm run testbed -- up\` first or pass --livy-url`,
      };
    }
    const port = await freePort();
    const workDir = mkdtempSync(join(tmpdir(), "livy-bench-"));
    const cmd = livyServerCommand(install, { port, workDir });
    const proc = startProcess({ name: "livy-bench", ...cmd }, workDir);
    stop = () => stopProcess(proc.pid);
    url = `http://127.0.0.1:${port}`;
    log(`starting Livy at ${url} (log ${proc.log})`);
    await waitForLivy(url, 180_000);
  }
  try {
    log(`creating ${SESSIONS} pyspark sessions (minutes on a small machine)`);
    const ids = await createSessions(url, SESSIONS, 15 * 60_000);
    try {
      const code = "spark.range(1000).count()";
      log("this client");
      const o = await ours(url, ids, code, TRIVIAL);
      log("naive poller");
      const n = await naive(url, ids, code, TRIVIAL);
      log("pylivy");
      const p = existsSync(install.python)
        ? await pylivy(install.python, url, ids, code)
        : ({ errors: [`no python with pylivy at ${install.python}`] } as unknown as Measurement);
      return { url, results: { ours: o, naive: n, pylivy: p } };
    } finally {
      await deleteSessions(url, ids);
    }
  } finally {
    await stop?.();
  }
}

function table(title: string, results: Record<string, Measurement>): string {
  const f = (x: number | undefined, d = 1) => (x === undefined || Number.isNaN(x) ? "-" : x.toFixed(d));
  const rows = Object.entries(results).map(([name, m]) => [
    name,
    f(m.trivial?.p50),
    f(m.trivial?.p99),
    f(m.trivialRequestsPerStatement, 2),
    f(m.batchWallMs, 0),
    f(m.batchRequestsPerStatement, 2),
    m.monitor ? f(m.monitor.requestsPerTickPerSession, 2) : "-",
  ]);
  const header = [
    "client",
    "trivial p50 ms",
    "p99 ms",
    "req/stmt",
    `${BATCH} stmts wall ms`,
    "req/stmt",
    "req/tick/session",
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => c.padStart(widths[i] ?? 0)).join("  ");
  return `${title}\n${line(header)}\n${rows.map(line).join("\n")}\n`;
}

const started = new Date();
const loadBefore = loadavg()[0];
log("stand-in (zero delay)");
const standin = await standinPart();
const livy = await livyPart();
const report = {
  date: started.toISOString(),
  machine: { cpus: cpus().length, load1Before: loadBefore, load1After: loadavg()[0] },
  options: { trivial: TRIVIAL, batch: BATCH, sessions: SESSIONS, naiveIntervalMs: NAIVE_MS },
  standin,
  livy,
};
process.stdout.write(
  table(`Stand-in, zero delay (own overhead; batch statements take 20 ms), ${SESSIONS} sessions`, standin),
);
if ("results" in livy) {
  process.stdout.write(`\n${table(`Real Livy at ${livy.url}, ${SESSIONS} pyspark sessions`, livy.results)}`);
  const o = livy.results.ours?.trivial.p50 ?? Number.NaN;
  const p = livy.results.pylivy?.trivial.p50 ?? Number.NaN;
  process.stdout.write(
    `trivial round trip p50: this client ${o.toFixed(1)} ms, pylivy ${p.toFixed(1)} ms (ratio ${(o / p).toFixed(3)})\n`,
  );
} else {
  process.stdout.write(`\nReal Livy: NOT RUN (${livy.skipped})\n`);
}
const dir = join(REPO_ROOT, "bench", "results");
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "latest.json"), `${JSON.stringify(report, null, 2)}\n`);
log(`wrote ${join(dir, "latest.json")}`);
