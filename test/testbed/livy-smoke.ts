/**
 * End-to-end check of real Livy on real Spark, run by hand: `node test/testbed/livy-smoke.ts [out.json]`.
 * Starts one Livy server, drives pyspark, spark (Scala) and sql sessions through the REST API, and writes
 * every request with the exact response (status, Location, body) plus timings and memory to out.json.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ensureLivyInstall, livyServerCommand, waitForLivy } from "./livy.ts";
import { freePort } from "./process.ts";

interface Exchange {
  label: string;
  method: string;
  path: string;
  request?: unknown;
  status: number;
  location: string | null;
  contentType: string | null;
  body: unknown;
}

type Json = Record<string, unknown>;

const out = process.argv[2] ?? "livy-observed.json";
const exchanges: Exchange[] = [];
const notes: Record<string, unknown> = {};

const install = await ensureLivyInstall();
const port = await freePort();
const workDir = mkdtempSync(join(tmpdir(), "livy-smoke-"));
const cmd = livyServerCommand(install, { port, workDir });
const log = openSync(join(workDir, "livy-server.log"), "a");
const started = Date.now();
const server = spawn(cmd.command, cmd.args, {
  cwd: cmd.cwd,
  env: { ...process.env, ...cmd.env },
  stdio: ["ignore", log, log],
});
const base = `http://127.0.0.1:${port}`;
console.error(`livy server pid ${server.pid} on ${base}, work dir ${workDir}`);

async function call(label: string, method: string, path: string, request?: unknown): Promise<Exchange> {
  const init: RequestInit = { method, headers: { "X-Requested-By": "livy-smoke" } };
  if (request !== undefined) {
    init.body = JSON.stringify(request);
    init.headers = { "X-Requested-By": "livy-smoke", "Content-Type": "application/json" };
  }
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON: keep the text */
  }
  const ex: Exchange = {
    label,
    method,
    path,
    status: res.status,
    location: res.headers.get("location"),
    contentType: res.headers.get("content-type"),
    body,
  };
  if (request !== undefined) ex.request = request;
  if (label) exchanges.push(ex);
  console.error(`${label || "(poll)"}: ${method} ${path} -> ${res.status} ${text.slice(0, 300)}`);
  return ex;
}

async function waitSession(id: number, want: string[], timeoutMs: number): Promise<Json> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = (await call("", "GET", `/sessions/${id}`)).body as Json;
    if (want.includes(String(s.state))) return s;
    if (["dead", "error", "killed"].includes(String(s.state)) || Date.now() > deadline) {
      const logEx = await call(`session ${id} log (failure)`, "GET", `/sessions/${id}/log?size=200`);
      throw new Error(`session ${id} is ${s.state}: ${JSON.stringify(logEx.body).slice(0, 4000)}`);
    }
    await sleep(200);
  }
}

async function waitStatement(sid: number, stid: number, want: string[], timeoutMs: number): Promise<Json> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = (await call("", "GET", `/sessions/${sid}/statements/${stid}`)).body as Json;
    if (want.includes(String(st.state))) return st;
    if (Date.now() > deadline) throw new Error(`statement ${sid}/${stid} is still ${st.state}`);
    await sleep(100);
  }
}

/** Runs one statement to its end and records the POST answer and the final statement. */
async function run(sid: number, label: string, code: string, kind?: string): Promise<Json> {
  const req: Json = kind ? { code, kind } : { code };
  const posted = await call(`${label}: POST`, "POST", `/sessions/${sid}/statements`, req);
  const st = posted.body as Json;
  await waitStatement(sid, Number(st.id), ["available", "cancelled"], 180_000);
  return (await call(`${label}: final`, "GET", `/sessions/${sid}/statements/${st.id}`)).body as Json;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m?.[1] ? Number(m[1]) : 0;
}

/** Every process under `root` with its command line and RSS. */
function processTree(root: number): { pid: number; rssKb: number; cmd: string }[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parent.set(Number(d), ppid);
    } catch {
      /* gone */
    }
  }
  const inTree = (pid: number): boolean => {
    for (let p: number | undefined = pid; p && p > 1; p = parent.get(p)) if (p === root) return true;
    return false;
  };
  const rows: { pid: number; rssKb: number; cmd: string }[] = [];
  for (const pid of parent.keys()) {
    if (!inTree(pid)) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
      rows.push({ pid, rssKb: rssKb(pid), cmd: cmdline.slice(0, 160) });
    } catch {
      /* gone */
    }
  }
  return rows;
}

try {
  await waitForLivy(base, 120_000);
  notes.serverReadyMs = Date.now() - started;
  notes.serverRssKbIdle = rssKb(server.pid ?? 0);
  await call("version", "GET", "/version");
  await call("list sessions (empty)", "GET", "/sessions");
  await call("get missing session", "GET", "/sessions/999");
  await call("get non-numeric session id", "GET", "/sessions/abc");
  await call("state of missing session", "GET", "/sessions/999/state");
  await call("statements of missing session", "GET", "/sessions/999/statements");
  await call("delete missing session", "DELETE", "/sessions/999");
  await call("create session with unknown field", "POST", "/sessions", { kind: "pyspark", bogus: 1 });
  await call("create session with bad kind", "POST", "/sessions", { kind: "cobol" });
  await call("create session with a JSON string for a body", "POST", "/sessions", "{not json");

  // ---- pyspark session
  const t0 = Date.now();
  const created = await call("create pyspark session", "POST", "/sessions", {
    kind: "pyspark",
    name: "smoke-py",
  });
  const py = Number((created.body as Json).id);
  await call("session right after create", "GET", `/sessions/${py}`);
  await call("statement while starting", "POST", `/sessions/${py}/statements`, { code: "1 + 1" });
  await call("state while starting", "GET", `/sessions/${py}/state`);
  await call("create second session with the same name", "POST", "/sessions", {
    kind: "pyspark",
    name: "smoke-py",
  });
  await waitSession(py, ["idle"], 300_000);
  notes.pysparkPostToIdleMs = Date.now() - t0;
  await call("idle pyspark session", "GET", `/sessions/${py}`);
  await call("list sessions (one)", "GET", "/sessions");
  await call("session state idle", "GET", `/sessions/${py}/state`);

  await run(py, "1 + 1", "1 + 1");
  await run(py, "spark.range(1000).count()", "spark.range(1000).count()");
  await run(py, "failing 1/0", "1/0");
  await run(py, "print text", 'print("hello")\nprint("world")');
  await run(py, "no output", "x = 5");
  await run(py, "%json magic", "%json {'a': [1, 2], 'b': None}");
  await run(py, "%table magic", "%table [['a', 1], ['b', 2]]");
  await run(py, "scala statement in a pyspark session", "spark.range(3).count()", "spark");
  await run(py, "sql statement in a pyspark session", "SELECT 1 AS one, 'x' AS s", "sql");
  await call("statement without code", "POST", `/sessions/${py}/statements`, {});
  await call("statement with unknown field", "POST", `/sessions/${py}/statements`, {
    code: "1",
    bogus: true,
  });

  // memory with one idle session: server JVM + everything it started (the driver JVM, python REPL)
  notes.processesWithOnePysparkSession = processTree(server.pid ?? 0);
  notes.serverRssKbWithOneSession = rssKb(server.pid ?? 0);

  // ---- long statement and cancel
  const long = (
    await call("long statement: POST", "POST", `/sessions/${py}/statements`, {
      code: "import time; time.sleep(30)",
    })
  ).body as Json;
  const waitingBehind = await call("queued statement: POST", "POST", `/sessions/${py}/statements`, {
    code: "2 + 2",
  });
  await waitStatement(py, Number(long.id), ["running"], 60_000);
  await sleep(1_000);
  await call("long statement running", "GET", `/sessions/${py}/statements/${long.id}`);
  await call(
    "queued statement while another runs",
    "GET",
    `/sessions/${py}/statements/${(waitingBehind.body as Json).id}`,
  );
  await call("busy session", "GET", `/sessions/${py}`);
  const tc = Date.now();
  await call("cancel running statement", "POST", `/sessions/${py}/statements/${long.id}/cancel`);
  await call("statement right after cancel", "GET", `/sessions/${py}/statements/${long.id}`);
  await waitStatement(py, Number(long.id), ["cancelled", "available"], 60_000);
  notes.cancelToCancelledMs = Date.now() - tc;
  await call("cancelled statement", "GET", `/sessions/${py}/statements/${long.id}`);
  await call("cancel again (already cancelled)", "POST", `/sessions/${py}/statements/${long.id}/cancel`);
  await waitStatement(py, Number((waitingBehind.body as Json).id), ["available"], 60_000);
  await call(
    "queued statement after cancel",
    "GET",
    `/sessions/${py}/statements/${(waitingBehind.body as Json).id}`,
  );
  const done = await run(py, "statement after cancel", "1 + 2");
  await call("cancel a finished statement", "POST", `/sessions/${py}/statements/${done.id}/cancel`);

  await call("list statements", "GET", `/sessions/${py}/statements`);
  await call("list statements paged desc", "GET", `/sessions/${py}/statements?from=0&size=2&order=desc`);
  await call("list statements paged asc", "GET", `/sessions/${py}/statements?from=1&size=2`);
  await call("missing statement", "GET", `/sessions/${py}/statements/999`);
  await call("cancel missing statement", "POST", `/sessions/${py}/statements/999/cancel`);
  await call("completion", "POST", `/sessions/${py}/completion`, {
    code: "spark.ran",
    kind: "pyspark",
    cursor: 9,
  });
  await call("session log", "GET", `/sessions/${py}/log?from=0&size=5`);
  await call("list sessions paged", "GET", "/sessions?from=0&size=1");
  await call("delete pyspark session", "DELETE", `/sessions/${py}`);
  await call("get deleted session", "GET", `/sessions/${py}`);
  await call("statements of deleted session", "GET", `/sessions/${py}/statements`);
  await call("statement to deleted session", "POST", `/sessions/${py}/statements`, { code: "1" });
  await call("delete deleted session", "DELETE", `/sessions/${py}`);
  await sleep(2_000);
  await call("get deleted session after 2s", "GET", `/sessions/${py}`);

  // ---- scala session
  const t1 = Date.now();
  const sc = Number(
    ((await call("create spark session", "POST", "/sessions", { kind: "spark" })).body as Json).id,
  );
  await waitSession(sc, ["idle"], 300_000);
  notes.sparkPostToIdleMs = Date.now() - t1;
  await call("idle spark session", "GET", `/sessions/${sc}`);
  await run(sc, "scala spark.range(10).count()", "spark.range(10).count()");
  await run(sc, "scala failing", "1/0");
  await run(sc, "scala compile error", "val x: Int = ");
  await call("delete spark session", "DELETE", `/sessions/${sc}`);

  // ---- sql session
  const t2 = Date.now();
  const sq = Number(
    ((await call("create sql session", "POST", "/sessions", { kind: "sql" })).body as Json).id,
  );
  await waitSession(sq, ["idle"], 300_000);
  notes.sqlPostToIdleMs = Date.now() - t2;
  await run(sq, "sql select", "SELECT id, id * 2 AS twice FROM range(3)");
  await run(sq, "sql error", "SELECT * FROM no_such_table");
  await call("delete sql session", "DELETE", `/sessions/${sq}`);
} catch (err) {
  notes.error = err instanceof Error ? err.stack : String(err);
  console.error(err);
} finally {
  writeFileSync(out, `${JSON.stringify({ notes, exchanges }, null, 2)}\n`);
  server.kill("SIGTERM");
  await sleep(3_000);
  if (server.exitCode === null) server.kill("SIGKILL");
  console.error(`wrote ${out}; server log in ${workDir}/livy-server.log`);
}
