/**
 * The Livy protocol stand-in: a node:http server that answers like Apache Livy 0.9 (session and
 * statement states, one statement at a time per session with the rest queued in order, output and error
 * shapes, the 400/404/500 bodies), fast and deterministic. The contract tests run the same suite against
 * it and against real Livy, so where they differ this file is what gets fixed.
 *
 * Besides Livy's routes it has a control API under `/_standin/` (delays, killing sessions, making the
 * server unreachable or fail, per-route request counters), also available in-process as `control`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { newScope, type Output, type Plan, pythonError, run, type Scope } from "./interpreter.ts";

export interface StandinConfig {
  /** `starting` → `idle` after this long. */
  sessionStartupMs: number;
  /** `not_started` → `starting` after this long (0: sessions are created `starting`, as Livy does). */
  notStartedMs: number;
  /** Added to every statement's run time. */
  statementRunMs: number;
  /** `cancelling` → `cancelled` after this long. */
  cancelDelayMs: number;
  /** Like `livy.rsc.retained-statements`: older statements are forgotten (404). */
  retainedStatements: number;
  /** Like `livy.server.csrf-protection.enabled`: writes need an `X-Requested-By` header. */
  csrf: boolean;
  /** Every Livy route answers only after this long (for timeouts and latency measurements). */
  responseDelayMs: number;
  /**
   * Every Livy route does its work at once and answers only this long afterwards: a statement POST has
   * created the statement while its answer is still on its way (for lost answers, e.g. a proxy killed).
   */
  answerDelayMs: number;
  /**
   * Real Livy cannot interrupt code that runs no Spark job (`time.sleep`): the statement stays `cancelling`
   * until the sleep ends or `cancelTimeoutMs` passes, and the REPL stays blocked until the sleep ends
   * (test/testbed/livy-observed.md, "cancel"). On by default, as Livy does; off, a cancel interrupts a sleep
   * at once, for tests that want quick cancels.
   */
  blockingSleep: boolean;
  /** Like `livy.rsc.job-cancel.timeout` (30 s). */
  cancelTimeoutMs: number;
}

export const DEFAULT_CONFIG: StandinConfig = {
  sessionStartupMs: 300,
  notStartedMs: 0,
  statementRunMs: 0,
  cancelDelayMs: 20,
  retainedStatements: 100,
  csrf: false,
  responseDelayMs: 0,
  answerDelayMs: 0,
  blockingSleep: true,
  cancelTimeoutMs: 30_000,
};

export interface StandinOptions extends Partial<StandinConfig> {
  host?: string;
  /** 0 (default): any free port. */
  port?: number;
}

export interface Counters {
  /** Livy requests (control requests excluded). */
  total: number;
  /** By route template, e.g. `GET /sessions/:id/statements`. */
  routes: Record<string, number>;
  /** By method and concrete path (no query), e.g. `GET /sessions/3/statements`. */
  paths: Record<string, number>;
}

export type ProgrammedOutput =
  | { data: Record<string, unknown> }
  | { error: { ename: string; evalue: string; traceback?: string[] } };

export interface FailureInjection {
  /** HTTP status to answer with, default 500. */
  status?: number;
  /** Fail this many requests, then answer normally again. */
  count?: number;
  /** Fail for this long. Without count or ms: until reset. */
  ms?: number;
  /** Body (a JSON value); default a Java exception string as Livy's 500s carry. */
  body?: unknown;
}

export interface StandinControl {
  config(): StandinConfig;
  configure(patch: Partial<StandinConfig>): StandinConfig;
  /** The session's Spark application dies: state `dead` (or `killed`/`error`), statements unreadable. */
  killSession(id: number, state?: string): void;
  /** Forces a session state (e.g. `recovering`); `idle`/`busy` resume running statements. */
  setSessionState(id: number, state: string): void;
  /**
   * The server stops answering for `ms`: `refuse` closes the listening socket (connections refused),
   * `reset` accepts connections and resets them. Open connections are destroyed either way.
   */
  unreachable(ms: number, mode?: "refuse" | "reset"): void;
  failRequests(injection: FailureInjection): void;
  /** Makes statements whose code is exactly `code` produce this output. */
  program(code: string, output: ProgrammedOutput): void;
  counters(): Counters;
  resetCounters(): void;
  /** Forgets sessions, outputs, failures and counters; back to the start configuration. */
  reset(): void;
}

export interface Standin {
  url: string;
  control: StandinControl;
  close(): Promise<void>;
}

/** Livy assembled from Maven Central has no build information: these fields are empty there. */
const livyVersion = (date: string) => ({
  url: "",
  branch: "",
  revision: "",
  version: "0.9.0-incubating",
  date,
  user: "",
});

/** In the order Jackson lists them in its "Unrecognized field" message, as real Livy shows it. */
const CREATE_FIELDS = [
  "executorCores",
  "conf",
  "driverMemory",
  "name",
  "driverCores",
  "idleTimeout",
  "pyFiles",
  "archives",
  "kind",
  "files",
  "jars",
  "proxyUser",
  "numExecutors",
  "heartbeatTimeoutInSecond",
  "ttl",
  "queue",
  "executorMemory",
] as const;
const EXECUTE_FIELDS = ["msg_type", "kind", "code"] as const;
const CREATE_CLASS = "org.apache.livy.server.interactive.CreateInteractiveRequest";
const EXECUTE_CLASS = "org.apache.livy.ExecuteRequest";

const KIND_ALIASES: Record<string, string> = {
  spark: "spark",
  scala: "spark",
  pyspark: "pyspark",
  python: "pyspark",
  sparkr: "sparkr",
  r: "sparkr",
  shared: "shared",
  sql: "sql",
};

/** Livy's `SessionState.isActive`: statements of other sessions cannot be read. */
const ACTIVE_STATES = new Set(["not_started", "starting", "recovering", "idle", "running", "busy", "error"]);

interface StatementRec {
  id: number;
  code: string;
  kind: string;
  state: string;
  output: Output | null;
  progress: number;
  started: number;
  completed: number;
  plan?: Plan;
  durationMs: number;
  timer?: NodeJS.Timeout;
}

interface SessionRec {
  id: number;
  name: string | null;
  kind: string;
  proxyUser: string | null;
  request: Record<string, unknown>;
  state: string;
  statements: Map<number, StatementRec>;
  nextStatementId: number;
  queue: StatementRec[];
  running: StatementRec | undefined;
  scope: Scope;
  log: string[];
  timers: Set<NodeJS.Timeout>;
}

interface Reply {
  status: number;
  /** A JSON value; Livy renders bare strings as JSON strings too. */
  json?: unknown;
  /** A non-JSON body (Jetty's HTML error pages). */
  html?: string;
}

const ok = (json: unknown): Reply => ({ status: 200, json });
const msg = (status: number, message: string): Reply => ({ status, json: { msg: message } });
/** Handlers that end in Livy's generic `error` clause answer with the exception text as a bare JSON string. */
const bare = (status: number, text: string): Reply => ({ status, json: text });

function jettyError(status: number, reason: string, uri: string): Reply {
  return {
    status,
    html:
      `<html>\n<head>\n<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>\n` +
      `<title>Error ${status} ${reason}</title>\n</head>\n<body><h2>HTTP ERROR ${status} ${reason}</h2>\n` +
      `<table>\n<tr><th>URI:</th><td>${uri}</td></tr>\n<tr><th>STATUS:</th><td>${status}</td></tr>\n` +
      `<tr><th>MESSAGE:</th><td>${reason}</td></tr>\n</table>\n\n</body>\n</html>\n`,
  };
}

class RequestError extends Error {
  readonly reply: Reply;

  constructor(reply: Reply) {
    super(typeof reply.json === "string" ? reply.json : "request error");
    this.reply = reply;
  }
}

/** `params("x").toInt` in Scala: a NumberFormatException, which Livy answers as a 400 `{"msg"}`. */
function toInt(raw: string | null | undefined, fallback: number): number {
  if (raw === null || raw === undefined) return fallback;
  if (!/^[-+]?\d+$/.test(raw)) throw new RequestError(msg(400, `For input string: "${raw}"`));
  return Number(raw);
}

export class LivyStandin implements StandinControl {
  readonly #initial: StandinConfig;
  #config: StandinConfig;
  #sessions = new Map<number, SessionRec>();
  #nextSessionId = 0;
  #outputs = new Map<string, ProgrammedOutput>();
  #failure: (FailureInjection & { until?: number }) | undefined;
  #counters: Counters = { total: 0, routes: {}, paths: {} };
  #resetUntil = 0;
  #refuseTimer: NodeJS.Timeout | undefined;
  readonly #sockets = new Set<Socket>();
  readonly server: Server;
  #listen: { host: string; port: number } = { host: "127.0.0.1", port: 0 };
  #closed = false;
  readonly #startedAt = new Date().toISOString().replace(/\.\d+Z$/, "Z");

  constructor(config: Partial<StandinConfig> = {}) {
    this.#initial = { ...DEFAULT_CONFIG, ...config };
    this.#config = { ...this.#initial };
    this.server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => void this.#handle(req, res));
    this.server.on("connection", (socket: Socket) => {
      if (Date.now() < this.#resetUntil) {
        socket.destroy();
        return;
      }
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
  }

  async listen(host = "127.0.0.1", port = 0): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const addr = this.server.address() as AddressInfo;
    this.#listen = { host, port: addr.port };
    const h = host.includes(":") ? `[${host}]` : host;
    return `http://${h}:${addr.port}`;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#refuseTimer) clearTimeout(this.#refuseTimer);
    this.#clearSessions();
    for (const s of this.#sockets) s.destroy();
    this.server.closeAllConnections();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // --- control -------------------------------------------------------------------------------------

  config(): StandinConfig {
    return { ...this.#config };
  }

  configure(patch: Partial<StandinConfig>): StandinConfig {
    for (const key of Object.keys(patch)) {
      if (!(key in DEFAULT_CONFIG)) throw new RequestError(msg(400, `unknown stand-in setting ${key}`));
    }
    this.#config = { ...this.#config, ...patch };
    return this.config();
  }

  killSession(id: number, state = "dead"): void {
    const s = this.#sessionById(id);
    this.#stopWork(s);
    s.state = state;
    s.log.push(`INFO SparkContext: Livy session ${id} ended: ${state}`);
  }

  setSessionState(id: number, state: string): void {
    const s = this.#sessionById(id);
    s.state = state;
    if (state === "idle" || state === "busy") this.#startNext(s);
  }

  unreachable(ms: number, mode: "refuse" | "reset" = "refuse"): void {
    for (const socket of this.#sockets) socket.destroy();
    if (mode === "reset") {
      this.#resetUntil = Date.now() + ms;
      return;
    }
    if (!this.server.listening) return;
    this.server.close();
    this.server.closeAllConnections();
    this.#refuseTimer = setTimeout(() => {
      this.#refuseTimer = undefined;
      if (!this.#closed) this.server.listen(this.#listen.port, this.#listen.host);
    }, ms);
  }

  failRequests(injection: FailureInjection): void {
    this.#failure = {
      ...injection,
      ...(injection.ms === undefined ? {} : { until: Date.now() + injection.ms }),
    };
  }

  program(code: string, output: ProgrammedOutput): void {
    this.#outputs.set(code, output);
  }

  counters(): Counters {
    return structuredClone(this.#counters);
  }

  resetCounters(): void {
    this.#counters = { total: 0, routes: {}, paths: {} };
  }

  reset(): void {
    if (this.#refuseTimer) {
      clearTimeout(this.#refuseTimer);
      this.#refuseTimer = undefined;
    }
    if (!this.server.listening && !this.#closed) this.server.listen(this.#listen.port, this.#listen.host);
    this.#clearSessions();
    this.#nextSessionId = 0;
    this.#outputs.clear();
    this.#failure = undefined;
    this.#resetUntil = 0;
    this.#config = { ...this.#initial };
    this.resetCounters();
  }

  // --- HTTP ----------------------------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://standin");
    const method = req.method ?? "GET";
    let body: string;
    try {
      body = await readBody(req);
    } catch {
      return;
    }
    let reply: Reply;
    try {
      if (url.pathname.startsWith("/_standin/")) {
        reply = this.#control(method, url.pathname, body);
      } else {
        reply = await this.#livy(method, url, body, req);
        if (this.#config.answerDelayMs > 0) await delay(this.#config.answerDelayMs);
      }
    } catch (err) {
      if (err instanceof RequestError) reply = err.reply;
      else
        reply = bare(500, `java.lang.RuntimeException: ${err instanceof Error ? err.message : String(err)}`);
    }
    send(res, reply);
  }

  async #livy(method: string, url: URL, body: string, req: IncomingMessage): Promise<Reply> {
    const segments = url.pathname.split("/").filter(Boolean);
    const route = routeOf(method, segments);
    this.#counters.total++;
    this.#counters.routes[route] = (this.#counters.routes[route] ?? 0) + 1;
    const pathKey = `${method} ${url.pathname}`;
    this.#counters.paths[pathKey] = (this.#counters.paths[pathKey] ?? 0) + 1;

    const failure = this.#activeFailure();
    if (failure)
      return {
        status: failure.status ?? 500,
        json: failure.body ?? "java.lang.RuntimeException: injected failure",
      };
    if (this.#config.csrf && !["GET", "HEAD", "OPTIONS"].includes(method) && !req.headers["x-requested-by"]) {
      return jettyError(400, "Missing Required Header for CSRF protection.", url.pathname);
    }
    if (this.#config.responseDelayMs > 0) await delay(this.#config.responseDelayMs);

    const q = url.searchParams;
    const [root, idParam, sub, sid, action] = segments;
    if (root === "version" && segments.length === 1 && method === "GET")
      return ok(livyVersion(this.#startedAt));
    if (root !== "sessions") return jettyError(404, "Not Found", url.pathname);
    if (idParam === undefined) {
      if (method === "GET") return this.#listSessions(toInt(q.get("from"), 0), toInt(q.get("size"), 100));
      if (method === "POST") return this.#createSession(body);
      return jettyError(405, "Method Not Allowed", url.pathname);
    }
    const session = this.#find(idParam);
    if (!session) return msg(404, `Session '${idParam}' not found.`);
    if (sub === undefined) {
      if (method === "GET") return ok(this.#sessionJson(session));
      if (method === "DELETE") return this.#deleteSession(session);
    } else if (sub === "state" && segments.length === 3 && method === "GET") {
      return ok({ id: session.id, state: session.state });
    } else if (sub === "log" && segments.length === 3 && method === "GET") {
      return ok(this.#log(session, q.get("from"), q.get("size")));
    } else if (sub === "completion" && segments.length === 3 && method === "POST") {
      return this.#completion(session, body);
    } else if (sub === "statements") {
      if (sid === undefined && method === "GET") return this.#listStatements(session, q);
      if (sid === undefined && method === "POST") return this.#submit(session, body);
      if (sid !== undefined && action === undefined && method === "GET")
        return this.#getStatement(session, sid);
      if (sid !== undefined && action === "cancel" && segments.length === 5 && method === "POST") {
        return this.#cancel(session, toInt(sid, 0));
      }
    }
    return jettyError(404, "Not Found", url.pathname);
  }

  #activeFailure(): FailureInjection | undefined {
    const f = this.#failure;
    if (!f) return undefined;
    if (f.until !== undefined && Date.now() >= f.until) {
      this.#failure = undefined;
      return undefined;
    }
    if (f.count !== undefined) {
      if (f.count <= 0) {
        this.#failure = undefined;
        return undefined;
      }
      f.count--;
    }
    return f;
  }

  #control(method: string, path: string, body: string): Reply {
    const args = body ? (JSON.parse(body) as Record<string, unknown>) : {};
    const segments = path.split("/").filter(Boolean).slice(1);
    const key = `${method} ${segments.map((s) => (/^\d+$/.test(s) ? ":id" : s)).join("/")}`;
    const id = Number(segments[1]);
    switch (key) {
      case "GET config":
        return ok(this.config());
      case "POST config":
        return ok(this.configure(args as Partial<StandinConfig>));
      case "POST reset":
        this.reset();
        return ok({ msg: "reset" });
      case "GET counters":
        return ok(this.counters());
      case "POST counters/reset":
        this.resetCounters();
        return ok({ msg: "reset" });
      case "POST sessions/:id/kill":
        this.killSession(id, typeof args.state === "string" ? args.state : "dead");
        return ok(this.#sessionJson(this.#sessionById(id)));
      case "POST sessions/:id/state":
        if (typeof args.state !== "string") return msg(400, "state required");
        this.setSessionState(id, args.state);
        return ok(this.#sessionJson(this.#sessionById(id)));
      case "POST unreachable": {
        const ms = Number(args.ms ?? 1000);
        const mode = args.mode === "reset" ? "reset" : "refuse";
        // After the answer has gone out, or the caller would see its own request fail.
        setImmediate(() => this.unreachable(ms, mode));
        return ok({ msg: `unreachable for ${ms} ms (${mode})` });
      }
      case "POST fail":
        this.failRequests(args as FailureInjection);
        return ok({ msg: "failing" });
      case "POST outputs":
        if (typeof args.code !== "string") return msg(400, "code required");
        this.program(args.code, args as unknown as ProgrammedOutput);
        return ok({ msg: "programmed" });
      default:
        return msg(404, `no stand-in control ${method} ${path}`);
    }
  }

  // --- sessions ------------------------------------------------------------------------------------

  #listSessions(from: number, size: number): Reply {
    const all = [...this.#sessions.values()];
    return ok({
      from,
      total: all.length,
      sessions: all.slice(from, from + size).map((s) => this.#sessionJson(s)),
    });
  }

  #createSession(body: string): Reply {
    const req = parseCreateRequest(body);
    // Livy takes the id before it checks the name: a refused duplicate still uses one up.
    const id = this.#nextSessionId++;
    const name = typeof req.name === "string" ? req.name : null;
    if (name !== null && [...this.#sessions.values()].some((o) => o.name === name)) {
      return msg(400, `Rejected, Reason: Duplicate session name: Some(${name}) for session ${id}`);
    }
    const s: SessionRec = {
      id,
      name,
      kind: typeof req.kind === "string" ? (KIND_ALIASES[req.kind] ?? "shared") : "shared",
      proxyUser: typeof req.proxyUser === "string" ? req.proxyUser : null,
      request: req,
      state: this.#config.notStartedMs > 0 ? "not_started" : "starting",
      statements: new Map(),
      nextStatementId: 0,
      queue: [],
      running: undefined,
      scope: newScope(),
      log: ["stdout: ", "\nstderr: "],
      timers: new Set(),
    };
    this.#sessions.set(id, s);
    const start = () => {
      s.state = "starting";
      this.#later(s, this.#config.sessionStartupMs, () => {
        if (s.state !== "starting") return;
        s.state = "idle";
        s.log.push(`INFO SparkContext: Spark context started for Livy session ${id}`);
        this.#startNext(s);
      });
    };
    if (s.state === "not_started") this.#later(s, this.#config.notStartedMs, start);
    else start();
    return { status: 201, json: this.#sessionJson(s) };
  }

  #deleteSession(s: SessionRec): Reply {
    this.#stopWork(s);
    this.#sessions.delete(s.id);
    return ok({ msg: "deleted" });
  }

  #sessionJson(s: SessionRec): Record<string, unknown> {
    const r = s.request;
    const list = (v: unknown) => (Array.isArray(v) ? v : []);
    const opt = (v: unknown) => (v === undefined ? null : v);
    return {
      id: s.id,
      name: s.name,
      // Local mode (the test bed's Livy) reports no application id.
      appId: null,
      owner: null,
      proxyUser: s.proxyUser,
      state: s.state,
      kind: s.kind,
      appInfo: { driverLogUrl: null, sparkUiUrl: null, executorLogUrls: null },
      log: s.log.slice(-10),
      ttl: opt(r.ttl),
      idleTimeout: opt(r.idleTimeout),
      driverMemory: opt(r.driverMemory),
      driverCores: r.driverCores ?? 0,
      executorMemory: opt(r.executorMemory),
      executorCores: r.executorCores ?? 0,
      conf: r.conf ?? {},
      archives: list(r.archives),
      files: list(r.files),
      heartbeatTimeoutInSecond: r.heartbeatTimeoutInSecond ?? 0,
      jars: list(r.jars),
      numExecutors: r.numExecutors ?? 0,
      pyFiles: list(r.pyFiles),
      queue: opt(r.queue),
    };
  }

  #log(s: SessionRec, fromRaw: string | null, sizeRaw: string | null): Record<string, unknown> {
    const lines = s.log;
    let size = toInt(sizeRaw, 100);
    let from = toInt(fromRaw, -1);
    if (size < 0) size = lines.length;
    if (from < 0) from = Math.max(0, lines.length - size);
    return { id: s.id, from, total: lines.length, log: lines.slice(from, from + size) };
  }

  #completion(s: SessionRec, body: string): Reply {
    this.#ensureRunning(s);
    const req = parseJsonObject(body, "org.apache.livy.CompletionRequest", ["code", "kind", "cursor"]);
    const code = typeof req.code === "string" ? req.code : "";
    const cursor = typeof req.cursor === "number" ? req.cursor : code.length;
    const word = /[A-Za-z_][\w.]*$/.exec(code.slice(0, cursor))?.[0] ?? "";
    const names = ["spark", "sc", "sqlContext", "print", "range", "len", ...s.scope.vars.keys()];
    return ok({ candidates: word ? names.filter((n) => n.startsWith(word) && n !== word) : [] });
  }

  // --- statements ----------------------------------------------------------------------------------

  #listStatements(s: SessionRec, q: URLSearchParams): Reply {
    this.#ensureActive(s);
    const all = [...s.statements.values()];
    if (q.get("order")?.trim().toLowerCase() === "desc") all.reverse();
    const from = toInt(q.get("from"), 0);
    const size = toInt(q.get("size"), all.length);
    return ok({ total_statements: all.length, statements: all.slice(from, from + size).map(statementJson) });
  }

  #getStatement(s: SessionRec, sidRaw: string): Reply {
    this.#ensureActive(s);
    const st = s.statements.get(toInt(sidRaw, 0));
    if (!st) return bare(404, "Statement not found");
    return ok(statementJson(st));
  }

  #submit(s: SessionRec, body: string): Reply {
    const req = parseJsonObject(body, EXECUTE_CLASS, EXECUTE_FIELDS);
    this.#ensureRunning(s);
    if (typeof req.code !== "string") {
      return bare(
        500,
        'java.util.concurrent.ExecutionException: org.apache.livy.rsc.rpc.RpcException: java.lang.NullPointerException: Cannot invoke "String.toCharArray()" because "s" is null\n\tat org.apache.livy.EOLUtils$Mode$.determineEOL(EOLUtils.scala:59)\n',
      );
    }
    const code = req.code;
    const requested = req.kind === undefined || req.kind === null ? undefined : String(req.kind);
    const kind = requested === undefined ? s.kind : KIND_ALIASES[requested];
    if (kind === undefined || kind === "shared") {
      const why =
        kind === undefined
          ? `Invalid kind: ${requested}`
          : "Code type should be specified if session kind is shared";
      return bare(
        500,
        `java.util.concurrent.ExecutionException: org.apache.livy.rsc.rpc.RpcException: java.lang.IllegalArgumentException: ${why}\n`,
      );
    }
    const st: StatementRec = {
      id: s.nextStatementId++,
      code,
      kind,
      state: "waiting",
      output: null,
      progress: 0,
      started: 0,
      completed: 0,
      durationMs: 0,
    };
    s.statements.set(st.id, st);
    // Like the driver's LinkedHashMap with removeEldestEntry: the oldest statement is forgotten.
    while (s.statements.size > this.#config.retainedStatements) {
      const oldest = s.statements.keys().next().value;
      if (oldest === undefined) break;
      s.statements.delete(oldest);
    }
    s.queue.push(st);
    // Livy answers before the REPL thread picks the statement up: the answer says `waiting`.
    setImmediate(() => this.#startNext(s));
    return { status: 201, json: statementJson(st) };
  }

  #cancel(s: SessionRec, id: number): Reply {
    this.#ensureRunning(s);
    const st = s.statements.get(id);
    if (!st || ["available", "cancelled", "cancelling"].includes(st.state)) return ok({ msg: "canceled" });
    if (st.state === "waiting") {
      st.state = "cancelled";
      st.progress = 1;
      st.completed = Date.now();
      s.queue = s.queue.filter((q) => q !== st);
      return ok({ msg: "canceled" });
    }
    st.state = "cancelling";
    if (this.#config.blockingSleep && !st.plan?.sparkJob) {
      // Livy's cancel loop gives up after the job-cancel timeout; the code itself runs on (see the run timer).
      this.#later(s, this.#config.cancelTimeoutMs, () => {
        if (st.state !== "cancelling") return;
        st.state = "cancelled";
        st.progress = 1;
        st.completed = Date.now();
      });
      return ok({ msg: "canceled" });
    }
    if (st.timer) clearTimeout(st.timer);
    this.#later(s, this.#config.cancelDelayMs, () => {
      st.state = "cancelled";
      st.progress = 1;
      st.completed = Date.now();
      this.#finished(s, st);
    });
    return ok({ msg: "canceled" });
  }

  #startNext(s: SessionRec): void {
    if (s.running || (s.state !== "idle" && s.state !== "busy")) return;
    const st = s.queue.shift();
    if (!st) {
      s.state = "idle";
      return;
    }
    s.running = st;
    s.state = "busy";
    st.state = "running";
    st.started = Date.now();
    const programmed = this.#outputs.get(st.code);
    const plan: Plan = programmed
      ? { sleepMs: 0, sparkJob: false, output: programmedOutput(programmed, st.id) }
      : run(st.code, st.kind, s.scope, st.id);
    st.plan = plan;
    st.durationMs = plan.sleepMs + this.#config.statementRunMs;
    st.timer = this.#later(s, st.durationMs, () => {
      // A statement cancelled while its code could not be interrupted still gets its output, as in Livy.
      if (st.state === "running") st.state = "available";
      else if (st.state === "cancelling") st.state = "cancelled";
      else if (st.state !== "cancelled") return;
      st.output = plan.output;
      st.progress = 1;
      st.completed = Date.now();
      this.#finished(s, st);
    });
  }

  #finished(s: SessionRec, st: StatementRec): void {
    if (s.running === st) s.running = undefined;
    if (s.state === "busy" || s.state === "idle") {
      s.state = s.queue.length > 0 ? "busy" : "idle";
      this.#startNext(s);
    }
  }

  /** Livy's `ensureRunning`: an IllegalStateException, rendered as a 500 with the exception's text. */
  #ensureRunning(s: SessionRec): void {
    if (s.state === "idle" || s.state === "busy") return;
    throw new RequestError(bare(500, `java.lang.IllegalStateException: Session is in state ${s.state}`));
  }

  /** Livy's `ensureActive`: a failed `require`, answered as a 400 `{"msg"}`. */
  #ensureActive(s: SessionRec): void {
    if (ACTIVE_STATES.has(s.state)) return;
    throw new RequestError(msg(400, "requirement failed: Session isn't active."));
  }

  // --- bookkeeping ---------------------------------------------------------------------------------

  #find(idOrName: string): SessionRec | undefined {
    if (/^\d+$/.test(idOrName)) return this.#sessions.get(Number(idOrName));
    return [...this.#sessions.values()].find((s) => s.name === idOrName);
  }

  #sessionById(id: number): SessionRec {
    const s = this.#sessions.get(id);
    if (!s) throw new RequestError(msg(404, `Session '${id}' not found.`));
    return s;
  }

  #later(s: SessionRec, ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      s.timers.delete(timer);
      fn();
    }, ms);
    s.timers.add(timer);
    return timer;
  }

  #stopWork(s: SessionRec): void {
    for (const t of s.timers) clearTimeout(t);
    s.timers.clear();
    s.queue = [];
    s.running = undefined;
  }

  #clearSessions(): void {
    for (const s of this.#sessions.values()) this.#stopWork(s);
    this.#sessions.clear();
  }
}

function statementJson(st: StatementRec): Record<string, unknown> {
  let progress = st.progress;
  if (st.state === "running" && st.plan?.sparkJob && st.durationMs > 0) {
    progress = Math.min(0.99, Math.floor(((Date.now() - st.started) / st.durationMs) * 100) / 100);
  }
  return {
    id: st.id,
    code: st.code,
    state: st.state,
    output: st.output,
    progress,
    started: st.started,
    completed: st.completed,
  };
}

function programmedOutput(p: ProgrammedOutput, executionCount: number): Output {
  if ("error" in p) {
    const out = pythonError(executionCount, p.error.ename, p.error.evalue);
    return p.error.traceback && out.status === "error" ? { ...out, traceback: p.error.traceback } : out;
  }
  return { status: "ok", execution_count: executionCount, data: p.data };
}

/**
 * Jackson's complaints, in the words real Livy answered with (see test/testbed/livy-smoke.ts): a body that
 * is not a JSON object, and an unknown field.
 */
function parseJsonObject(
  body: string,
  className: string,
  fields?: readonly string[],
): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    value = body;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    const shown = typeof value === "string" ? `String value ('${value}')` : `${JSON.stringify(value)}`;
    throw new RequestError(
      bare(
        400,
        `Cannot construct instance of \`${className}\` (although at least one Creator exists): no String-argument constructor/factory method to deserialize from ${shown}\n at [Source: (org.eclipse.jetty.server.HttpInputOverHTTP); line: 1, column: 1]`,
      ),
    );
  }
  const obj = value as Record<string, unknown>;
  if (fields) {
    for (const key of Object.keys(obj)) {
      if (fields.includes(key)) continue;
      // Where Jackson stood when it noticed: past the field's value for a bean, past the object for a case class.
      const after = body.indexOf(`"${key}"`) + key.length + 4 + JSON.stringify(obj[key]).length;
      const column = className === CREATE_CLASS ? after : body.length + 1;
      throw new RequestError(
        bare(
          400,
          `Unrecognized field "${key}" (class ${className}), not marked as ignorable (${fields.length} known properties: ${fields.map((f) => `"${f}"`).join(", ")}])\n at [Source: (org.eclipse.jetty.server.HttpInputOverHTTP); line: 1, column: ${column}] (through reference chain: ${className}["${key}"])`,
        ),
      );
    }
  }
  return obj;
}

function parseCreateRequest(body: string): Record<string, unknown> {
  const req = parseJsonObject(body, CREATE_CLASS, CREATE_FIELDS);
  const chain = (field: string) => ` (through reference chain: ${CREATE_CLASS}["${field}"])`;
  if (req.kind !== undefined && req.kind !== null) {
    if (typeof req.kind !== "string") {
      throw new RequestError(bare(400, `requirement failed: Kind should be a string.${chain("kind")}`));
    }
    if (!(req.kind in KIND_ALIASES))
      throw new RequestError(bare(400, `Invalid kind: ${req.kind}${chain("kind")}`));
  }
  for (const field of ["driverCores", "executorCores", "numExecutors", "heartbeatTimeoutInSecond"]) {
    const v = req[field];
    if (v !== undefined && v !== null && !Number.isInteger(v)) {
      throw new RequestError(
        bare(400, `Cannot deserialize value of type \`int\` from ${JSON.stringify(v)}${chain(field)}`),
      );
    }
  }
  for (const field of ["jars", "pyFiles", "files", "archives"]) {
    const v = req[field];
    if (v !== undefined && (!Array.isArray(v) || !v.every((x) => typeof x === "string"))) {
      throw new RequestError(
        bare(400, `Cannot deserialize instance of \`scala.collection.immutable.List\`${chain(field)}`),
      );
    }
  }
  for (const field of ["ttl", "idleTimeout"]) {
    const v = req[field];
    if (
      v !== undefined &&
      v !== null &&
      (typeof v !== "string" || !/^\d+\s*(us|ms|s|m|min|h|d)?$/i.test(v.trim()))
    ) {
      throw new RequestError(msg(400, `Rejected, Reason: Invalid time string: ${String(v)}`));
    }
  }
  return req;
}

function routeOf(method: string, segments: string[]): string {
  const [root, id, sub, sid, action] = segments;
  if (root === "version") return `${method} /version`;
  if (root !== "sessions") return `${method} (unknown)`;
  const parts = ["/sessions"];
  if (id !== undefined) parts.push("/:id");
  if (sub !== undefined) parts.push(`/${sub}`);
  if (sid !== undefined) parts.push("/:sid");
  if (action !== undefined) parts.push(`/${action}`);
  return `${method} ${parts.join("")}`;
}

function send(res: ServerResponse, reply: Reply): void {
  if (res.destroyed) return;
  const text = reply.html ?? (reply.json === undefined ? "" : JSON.stringify(reply.json));
  res.writeHead(reply.status, {
    "content-type":
      reply.html !== undefined ? "text/html;charset=iso-8859-1" : "application/json;charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Starts a stand-in in this process (unit tests, benchmarks). */
export async function startStandin(options: StandinOptions = {}): Promise<Standin> {
  const { host, port, ...config } = options;
  const standin = new LivyStandin(config);
  const url = await standin.listen(host, port);
  return { url, control: standin, close: () => standin.close() };
}
