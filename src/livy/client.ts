/**
 * LivyClient: the only code that speaks Livy's REST protocol. One keep-alive connection pool per client,
 * every response parsed with the schemas of protocol.ts, every failure turned into a typed LivyError.
 * The operator uses the plain methods; applications usually go through `client.session(id)`.
 */
import { Buffer } from "node:buffer";
import type { z } from "zod";
import { Client, type Dispatcher, Pool } from "../util/undici.ts";
import {
  isTransient,
  LivyAbortError,
  LivyError,
  LivyHttpError,
  LivyProtocolError,
  LivyUnreachableError,
  SessionGoneError,
  SessionNotUsableError,
  snippetOf,
} from "./errors.ts";
import { type LaneRequest, OrderedLane } from "./lane.ts";
import { type MonitorOptions, SessionMonitor } from "./monitor.ts";
import {
  type BatchList,
  batchListSchema,
  type CompletionRequest,
  type CreateSessionRequest,
  completionSchema,
  LIVY_MESSAGES,
  type LivyMessage,
  type LivyVersion,
  messageSchema,
  type Session,
  type SessionList,
  type SessionLog,
  type SessionStateResponse,
  type Statement,
  type StatementKind,
  type StatementList,
  type StatementOrder,
  sessionListSchema,
  sessionLogSchema,
  sessionSchema,
  sessionStateSchema,
  statementListSchema,
  statementSchema,
  versionSchema,
} from "./protocol.ts";
import { InteractiveSession, OwnedSession, type SessionOptions } from "./session.ts";
import { type BackoffPolicy, backoffDelay, Deadline, raceSignal, sleep, type WaitOptions } from "./wait.ts";

export type LivyAuth =
  | { type: "basic"; username: string; password: string }
  /** A function is called per request, so a token can be refreshed. */
  | { type: "bearer"; token: string | (() => string | Promise<string>) };

export interface LivyTlsOptions {
  /** PEM CA bundle(s) to trust instead of the system's. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Client certificate and key (PEM), for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Default true. */
  rejectUnauthorized?: boolean;
  servername?: string;
}

export interface RetryPolicy extends BackoffPolicy {
  /** Retries after the first attempt. */
  retries: number;
}

export interface LivyClientOptions {
  /** `http(s)://host:8998`, optionally with a path prefix (a proxy) and `user:password@` for basic auth. */
  baseUrl: string | URL;
  auth?: LivyAuth;
  tls?: LivyTlsOptions;
  /** Sent with every request (after the client's own headers, so they can override `Accept`). */
  headers?: Record<string, string>;
  /** Per request, default 30 s. Each call can override it. */
  timeoutMs?: number;
  /**
   * Retries of idempotent reads (GET) on transient failures. Default: none, so failures surface at once;
   * `client.session(id, {mode: "resilient"})` passes its own policy.
   */
  retry?: RetryPolicy | false;
  /** Keep-alive connections to the server for reads and other requests, default 16. */
  connections?: number;
  /**
   * Statement POSTs of one session in flight at once on that session's own connection (HTTP/1.1
   * pipelining), default 16. Livy numbers them in the order they were written (see lane.ts), so a burst
   * costs Livy's handling time per statement, not a round trip each. 1 sends each after the previous one
   * was answered; that is also what happens with a `dispatcher` of the caller's (a proxy may not keep the
   * order of one connection's requests).
   */
  pipelining?: number;
  /** Replaces the client's own connection pool (a proxy agent, a mock); the client will not close it. */
  dispatcher?: Dispatcher;
  /** Polling of in-flight statements. */
  monitor?: Partial<MonitorOptions>;
}

export interface RequestOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Only honoured for idempotent requests. */
  retry?: RetryPolicy | false;
}

export interface PageOptions extends RequestOptions {
  from?: number;
  size?: number;
}

export interface ListStatementsOptions extends PageOptions {
  order?: StatementOrder;
}

export interface SubmitStatementOptions extends RequestOptions {
  kind?: StatementKind;
  /**
   * Runs in submission order just before the statement is sent (each time it is): nothing submitted to this
   * session after it is sent before this ends, so a wait here (e.g. until the session is usable) keeps the
   * order. Throwing drops the statement unsent.
   */
  beforeSend?: (attempt: number) => Promise<void> | void;
  /**
   * Sends the statement again when this returns true for its failure; only for failures after which Livy
   * certainly did not create it (the session was still starting, the connection was refused). It goes out
   * again before anything submitted to this session after it that was not sent yet.
   */
  resendWhen?: (err: unknown, attempt: number) => boolean;
}

export interface ClientStats {
  /** HTTP requests sent, retries included. */
  requests: number;
  /** Requests by route, `GET /sessions/:id/statements` style. */
  byRoute: Record<string, number>;
}

interface Call<T> {
  method: "GET" | "POST" | "DELETE";
  /** Route template for stats, e.g. `/sessions/:id`. */
  route: string;
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  schema: z.ZodType<T>;
  /** Set for `/sessions/{id}...` so that errors can say which session is gone or unusable. */
  sessionId?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const CREATE_SESSION_TIMEOUT_MS = 120_000;

/** Connection failures where the request certainly did not reach the server. */
const NOT_SENT = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

export class LivyClient {
  readonly baseUrl: URL;
  readonly #origin: string;
  readonly #basePath: string;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #headers: Record<string, string>;
  readonly #auth: LivyAuth | undefined;
  readonly #timeoutMs: number;
  readonly #retry: RetryPolicy | false;
  readonly #monitorOptions: Partial<MonitorOptions>;
  readonly #monitors = new Map<number, SessionMonitor>();
  readonly #pipelining: number;
  readonly #tls: LivyTlsOptions | undefined;
  /** Per session: the ordered lane of its statement POSTs and, when the client owns its transport, the connection. */
  readonly #lanes = new Map<number, { lane: OrderedLane; dispatcher: Dispatcher; owned: boolean }>();
  /** Aborts every request and wait of this client on close(). */
  readonly #closing = new AbortController();
  #requests = 0;
  readonly #byRoute: Record<string, number> = {};

  constructor(options: LivyClientOptions) {
    const url = new URL(options.baseUrl);
    this.#auth = options.auth;
    if (!this.#auth && url.username) {
      this.#auth = {
        type: "basic",
        username: decodeURIComponent(url.username),
        password: decodeURIComponent(url.password),
      };
    }
    url.username = "";
    url.password = "";
    this.baseUrl = url;
    this.#origin = url.origin;
    this.#basePath = url.pathname.replace(/\/+$/, "");
    this.#headers = {
      accept: "application/json",
      // Livy's CSRF filter refuses writes without it; sending it always costs nothing.
      "x-requested-by": "livy",
      ...lowerKeys(options.headers ?? {}),
    };
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#retry = options.retry ?? false;
    this.#monitorOptions = options.monitor ?? {};
    this.#pipelining = options.pipelining ?? 16;
    if (!Number.isInteger(this.#pipelining) || this.#pipelining < 1)
      throw new RangeError(`pipelining must be an integer ≥ 1, got ${options.pipelining}`);
    this.#tls = options.tls;
    if (options.dispatcher) {
      this.#dispatcher = options.dispatcher;
      this.#ownsDispatcher = false;
    } else {
      this.#dispatcher = new Pool(this.#origin, {
        connections: options.connections ?? 16,
        ...connectOptions(options.tls),
      });
      this.#ownsDispatcher = true;
    }
  }

  // --- server --------------------------------------------------------------------------------------

  version(opts: RequestOptions = {}): Promise<LivyVersion> {
    return this.#call({ method: "GET", route: "/version", path: "/version", schema: versionSchema }, opts);
  }

  // --- sessions ------------------------------------------------------------------------------------

  listSessions(opts: PageOptions = {}): Promise<SessionList> {
    return this.#call(
      {
        method: "GET",
        route: "/sessions",
        path: "/sessions",
        query: { from: opts.from, size: opts.size },
        schema: sessionListSchema,
      },
      opts,
    );
  }

  /** The batches on the server (`GET /batches`): their ids, names and states. */
  listBatches(opts: PageOptions = {}): Promise<BatchList> {
    return this.#call(
      {
        method: "GET",
        route: "/batches",
        path: "/batches",
        query: { from: opts.from, size: opts.size },
        schema: batchListSchema,
      },
      opts,
    );
  }

  /**
   * The session named `name` (Livy 0.8+ looks `/sessions/{idOrName}` up by name when it is not a number),
   * or null when there is none: one request, where listing would grow with the server's sessions.
   */
  async findSessionByName(name: string, opts: RequestOptions = {}): Promise<Session | null> {
    if (/^-?\d+$/.test(name))
      throw new RangeError(`a session name that is a number is read as an id: ${name}`);
    try {
      return await this.#call(
        {
          method: "GET",
          route: "/sessions/:name",
          path: `/sessions/${encodeURIComponent(name)}`,
          schema: sessionSchema,
        },
        opts,
      );
    } catch (err) {
      if (err instanceof LivyHttpError && err.status === 404) return null;
      throw err;
    }
  }

  getSession(id: number, opts: RequestOptions = {}): Promise<Session> {
    return this.#call(
      {
        method: "GET",
        route: "/sessions/:id",
        path: `/sessions/${id}`,
        schema: sessionSchema,
        sessionId: id,
      },
      opts,
    );
  }

  getSessionState(id: number, opts: RequestOptions = {}): Promise<SessionStateResponse> {
    return this.#call(
      {
        method: "GET",
        route: "/sessions/:id/state",
        path: `/sessions/${id}/state`,
        schema: sessionStateSchema,
        sessionId: id,
      },
      opts,
    );
  }

  /** Fields left undefined are not sent: Livy refuses fields it does not know (see CreateSessionRequest). */
  createSession(body: CreateSessionRequest, opts: RequestOptions = {}): Promise<Session> {
    // Livy answers POST /sessions only after launching the session's driver: seconds, and over 30 s on a
    // loaded machine (37 s measured at load 44), so its own default is longer than other requests'
    if (opts.timeoutMs === undefined) opts = { ...opts, timeoutMs: CREATE_SESSION_TIMEOUT_MS };
    return this.#call(
      {
        method: "POST",
        route: "/sessions",
        path: "/sessions",
        body: withoutUndefined(body),
        schema: sessionSchema,
      },
      opts,
    );
  }

  deleteSession(id: number, opts: RequestOptions = {}): Promise<LivyMessage> {
    return this.#call(
      {
        method: "DELETE",
        route: "/sessions/:id",
        path: `/sessions/${id}`,
        schema: messageSchema,
        sessionId: id,
      },
      opts,
    );
  }

  /** Without `from`, Livy returns the last `size` (default 100) lines. */
  sessionLog(id: number, opts: PageOptions = {}): Promise<SessionLog> {
    return this.#call(
      {
        method: "GET",
        route: "/sessions/:id/log",
        path: `/sessions/${id}/log`,
        query: { from: opts.from, size: opts.size },
        schema: sessionLogSchema,
        sessionId: id,
      },
      opts,
    );
  }

  // --- statements ----------------------------------------------------------------------------------

  /**
   * POSTs a statement; Livy answers at once (usually `waiting`). Never retried unless `opts.resendWhen` says so:
   * it is not idempotent. A session's statements are numbered by Livy in the order of the calls (they go out
   * pipelined on the session's own connection, in call order).
   */
  submitStatement(sessionId: number, code: string, opts: SubmitStatementOptions = {}): Promise<Statement> {
    const call: Call<Statement> = {
      method: "POST",
      route: "/sessions/:id/statements",
      path: `/sessions/${sessionId}/statements`,
      body: opts.kind === undefined ? { code } : { code, kind: opts.kind },
      schema: statementSchema,
      sessionId,
    };
    const { lane, dispatcher, owned } = this.#lane(sessionId);
    const what = `${call.method} ${call.path}`;
    // The caller's signal and timeout bound the whole submission, its wait in the lane included; the
    // transport's own timeout counts from the moment the request was sent (see #lane).
    const deadline = new Deadline(what, { signal: opts.signal, timeoutMs: opts.timeoutMs }, [
      this.#closing.signal,
    ]);
    const { beforeSend, resendWhen } = opts;
    const request: LaneRequest<Prepared, Statement> = {
      signal: deadline.signal,
      prepare: async (attempt) => {
        if (beforeSend) await beforeSend(attempt);
        return this.#prepare(call);
      },
      send: (prepared) =>
        owned
          ? this.#sendOrdered(call, prepared, dispatcher)
          : this.#attempt(call, this.#timeoutMs, this.#closing.signal, prepared),
      ...(resendWhen ? { resend: resendWhen } : {}),
    };
    const submitted = lane.submit(request);
    // Given up on after it was sent, it may still be created: cancel it, so it does not hold up the session.
    submitted.then(
      (st) => {
        if (deadline.signal.aborted && !this.closed)
          this.cancelStatement(sessionId, st.id, { timeoutMs: 5_000 }).catch(() => {});
      },
      () => {},
    );
    return raceSignal(submitted, deadline.signal).finally(() => deadline.dispose());
  }

  /** Statement POSTs of this session submitted and not answered yet. */
  pendingSubmissions(sessionId: number): number {
    return this.#lanes.get(sessionId)?.lane.pending ?? 0;
  }

  getStatement(sessionId: number, statementId: number, opts: RequestOptions = {}): Promise<Statement> {
    return this.#call(
      {
        method: "GET",
        route: "/sessions/:id/statements/:sid",
        path: `/sessions/${sessionId}/statements/${statementId}`,
        schema: statementSchema,
        sessionId,
      },
      opts,
    );
  }

  /**
   * `order: "desc"` with `size: n` gives the n newest statements in one request (Livy 0.8+): how the
   * monitor and the operator read activity.
   */
  listStatements(sessionId: number, opts: ListStatementsOptions = {}): Promise<StatementList> {
    return this.#call(
      {
        method: "GET",
        route: "/sessions/:id/statements",
        path: `/sessions/${sessionId}/statements`,
        query: { from: opts.from, size: opts.size, order: opts.order },
        schema: statementListSchema,
        sessionId,
      },
      opts,
    );
  }

  cancelStatement(sessionId: number, statementId: number, opts: RequestOptions = {}): Promise<LivyMessage> {
    return this.#call(
      {
        method: "POST",
        route: "/sessions/:id/statements/:sid/cancel",
        path: `/sessions/${sessionId}/statements/${statementId}/cancel`,
        schema: messageSchema,
        sessionId,
      },
      opts,
    );
  }

  async completion(
    sessionId: number,
    request: CompletionRequest,
    opts: RequestOptions = {},
  ): Promise<string[]> {
    const res = await this.#call(
      {
        method: "POST",
        route: "/sessions/:id/completion",
        path: `/sessions/${sessionId}/completion`,
        body: request,
        schema: completionSchema,
        sessionId,
      },
      opts,
    );
    return res.candidates;
  }

  // --- higher level --------------------------------------------------------------------------------

  /**
   * A view of session `id` for submitting statements. Views of the same session share one monitor,
   * so polling stays one request per session per tick however many views and statements exist.
   */
  session(id: number, options: SessionOptions = {}): InteractiveSession {
    return new InteractiveSession(this, this.#monitorFor(id), options);
  }

  /**
   * Creates a Livy session, waits until it is idle, and gives a view of it that deletes it when disposed:
   *
   * ```ts
   * await using session = await client.startSession({ kind: "pyspark" }, { timeoutMs: 5 * 60_000 });
   * console.log((await session.run("1 + 1")).text);
   * // deleted here, whether the block ended normally or by an exception
   * ```
   * A session that does not become idle in time is deleted before the error is thrown.
   */
  async startSession(
    body: CreateSessionRequest,
    options: SessionOptions & WaitOptions = {},
  ): Promise<OwnedSession> {
    const created = await this.createSession(body, requestOptions(options));
    const session = new OwnedSession(this, this.#monitorFor(created.id), options);
    try {
      await session.waitForIdle(options);
    } catch (err) {
      await session.delete({ timeoutMs: 10_000 }).catch(() => {});
      throw err;
    }
    return session;
  }

  #monitorFor(id: number): SessionMonitor {
    this.#closing.signal.throwIfAborted();
    let monitor = this.#monitors.get(id);
    if (!monitor) {
      monitor = new SessionMonitor(this, id, this.#monitorOptions, this.#closing.signal);
      this.#monitors.set(id, monitor);
    }
    return monitor;
  }

  stats(): ClientStats {
    return { requests: this.#requests, byRoute: { ...this.#byRoute } };
  }

  get closed(): boolean {
    return this.#closing.signal.aborted;
  }

  /** The signal every request and wait of this client observes; aborted by close(). */
  get closeSignal(): AbortSignal {
    return this.#closing.signal;
  }

  /** Aborts everything in flight (results reject with LivyAbortError), stops monitors, frees connections. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort(new Error("client closed"));
    for (const monitor of this.#monitors.values()) monitor.close();
    this.#monitors.clear();
    const lanes = [...this.#lanes.values()];
    this.#lanes.clear();
    // destroy, not close: statement POSTs carry no abort signal (see #sendOrdered), so close() would wait for them
    await Promise.all(lanes.filter((l) => l.owned).map((l) => l.dispatcher.destroy()));
    if (this.#ownsDispatcher) await this.#dispatcher.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- transport -----------------------------------------------------------------------------------

  async #call<T>(call: Call<T>, opts: RequestOptions): Promise<T> {
    const retry = call.method === "GET" ? (opts.retry ?? this.#retry) : false;
    const what = `${call.method} ${call.path}`;
    // The caller's signal bounds all attempts; the timeout applies to each attempt.
    const overall = new Deadline(what, { signal: opts.signal }, [this.#closing.signal]);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.#attempt(call, opts.timeoutMs ?? this.#timeoutMs, overall.signal);
        } catch (err) {
          if (!retry || attempt >= retry.retries || !isTransient(err) || overall.signal.aborted) throw err;
          await sleep(backoffDelay(retry, attempt), overall.signal);
        }
      }
    } finally {
      overall.dispose();
    }
  }

  async #attempt<T>(call: Call<T>, timeoutMs: number, parent: AbortSignal, ready?: Prepared): Promise<T> {
    const what = `${call.method} ${call.path}`;
    const deadline = new Deadline(what, { timeoutMs }, [parent]);
    deadline.throwIfDone();
    let status: number;
    let text: string;
    try {
      const prepared = ready ?? (await this.#prepare(call));
      const res = await this.#dispatcher.request({
        origin: this.#origin,
        path: prepared.path,
        method: call.method,
        headers: prepared.headers,
        body: prepared.payload ?? null,
        signal: deadline.signal,
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      if (deadline.signal.aborted) throw deadline.signal.reason;
      throw this.#networkError(err, call);
    } finally {
      deadline.dispose();
    }
    if (status >= 200 && status < 300) return parseBody(call, status, text);
    throw httpError(call, status, text);
  }

  /** Path, headers (auth included) and body of a request; counts it. */
  async #prepare(call: Call<unknown>): Promise<Prepared> {
    const headers: Record<string, string> = { ...this.#headers };
    const auth = await this.#authorization();
    if (auth) headers.authorization = auth;
    let payload: string | undefined;
    if (call.body !== undefined) {
      payload = JSON.stringify(call.body);
      headers["content-type"] = "application/json";
    }
    this.#requests++;
    const key = `${call.method} ${call.route}`;
    this.#byRoute[key] = (this.#byRoute[key] ?? 0) + 1;
    return { path: this.#basePath + call.path + queryString(call.query), headers, payload };
  }

  /**
   * Sends a statement POST on its session's lane connection. No abort signal reaches the transport: undici
   * aborts a request by destroying its socket, which would fail or (as it re-sends pipelined requests after a
   * socket closes) duplicate the requests queued behind it. A request the connection would send a second
   * time is refused instead: it may already have created its statement.
   */
  #sendOrdered(call: Call<Statement>, prepared: Prepared, dispatcher: Dispatcher): Promise<Statement> {
    return new Promise<Statement>((resolve, reject) => {
      let starts = 0;
      let status = 0;
      const chunks: Buffer[] = [];
      const fail = (err: unknown) => {
        reject(
          this.#closing.signal.aborted
            ? toAbort(`${call.method} ${call.path}`, this.#closing.signal.reason)
            : this.#networkError(err, call),
        );
      };
      dispatcher.dispatch(
        {
          origin: this.#origin,
          path: prepared.path,
          method: "POST",
          headers: prepared.headers,
          body: prepared.payload ?? null,
          // what lets undici pipeline a POST; its automatic re-send is refused in onRequestStart
          idempotent: true,
          // undici's default for a POST: send nothing more on the connection until its answer's headers came
          blocking: false,
        },
        {
          onRequestStart: (controller) => {
            if (++starts > 1) controller.abort(new PipelineResendRefused());
          },
          onResponseStart: (_controller, statusCode) => {
            status = statusCode;
          },
          onResponseData: (_controller, chunk) => {
            chunks.push(chunk);
          },
          onResponseEnd: () => {
            const text = Buffer.concat(chunks).toString("utf8");
            try {
              if (status >= 200 && status < 300) resolve(parseBody(call, status, text));
              else reject(httpError(call, status, text));
            } catch (err) {
              reject(err);
            }
          },
          onResponseError: (_controller, err) => fail(err),
        },
      );
    });
  }

  /** The ordered lane of a session's statement POSTs, created on first use. */
  #lane(sessionId: number): { lane: OrderedLane; dispatcher: Dispatcher; owned: boolean } {
    this.#closing.signal.throwIfAborted();
    let entry = this.#lanes.get(sessionId);
    if (!entry) {
      if (this.#ownsDispatcher) {
        const dispatcher = new Client(this.#origin, {
          pipelining: this.#pipelining,
          // a stalled Livy fails the connection's requests instead of holding them forever
          headersTimeout: this.#timeoutMs,
          bodyTimeout: this.#timeoutMs,
          ...connectOptions(this.#tls),
        });
        entry = { lane: new OrderedLane(this.#pipelining), dispatcher, owned: true };
      } else {
        entry = { lane: new OrderedLane(1), dispatcher: this.#dispatcher, owned: false };
      }
      this.#lanes.set(sessionId, entry);
    }
    return entry;
  }

  async #authorization(): Promise<string | undefined> {
    const auth = this.#auth;
    if (!auth) return undefined;
    if (auth.type === "basic") {
      return `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}`;
    }
    const token = typeof auth.token === "function" ? await auth.token() : auth.token;
    return `Bearer ${token}`;
  }

  #networkError(err: unknown, call: Call<unknown>): LivyError {
    if (err instanceof LivyError) return err;
    if (err instanceof PipelineResendRefused) {
      return new LivyUnreachableError(
        {
          url: this.#origin + this.#basePath,
          reason: "CONNECTION_LOST",
          requestSent: true,
          message: err.message,
        },
        { cause: err, ...(call.sessionId === undefined ? {} : { sessionId: call.sessionId }) },
      );
    }
    const code = errorCode(err);
    return new LivyUnreachableError(
      {
        url: this.#origin + this.#basePath,
        reason: code ?? "unknown",
        requestSent: !(code !== undefined && NOT_SENT.has(code)),
        message: err instanceof Error ? err.message : String(err),
      },
      { cause: err, ...(call.sessionId === undefined ? {} : { sessionId: call.sessionId }) },
    );
  }
}

function requestOptions(o: WaitOptions): RequestOptions {
  return {
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
  };
}

interface Prepared {
  path: string;
  headers: Record<string, string>;
  payload: string | undefined;
}

/** The connection closed with this request written and unanswered: Livy may have acted on it. */
class PipelineResendRefused extends Error {
  constructor() {
    super(
      "the connection closed before Livy answered; the statement may have been created, so it is not sent again",
    );
    this.name = "PipelineResendRefused";
  }
}

function toAbort(what: string, reason: unknown): LivyError {
  return reason instanceof LivyError ? reason : new LivyAbortError(what, reason);
}

function connectOptions(tls: LivyTlsOptions | undefined): { connect?: Record<string, unknown> } {
  if (!tls) return {};
  return {
    connect: {
      ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
      ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
      ...(tls.key !== undefined ? { key: tls.key } : {}),
      ...(tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
      ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
    },
  };
}

function parseBody<T>(call: Call<T>, status: number, text: string): T {
  const options = call.sessionId === undefined ? {} : { sessionId: call.sessionId };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new LivyProtocolError(
      `${call.method} ${call.path}: HTTP ${status} with a body that is not JSON`,
      snippetOf(text),
      options,
    );
  }
  const parsed = call.schema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
      .join("; ");
    throw new LivyProtocolError(
      `${call.method} ${call.path}: unexpected response (${issues})`,
      snippetOf(text),
      options,
    );
  }
  return parsed.data;
}

/**
 * Livy's error bodies: `{"msg": ...}` since 0.7, a bare JSON string from some handlers (and before 0.7),
 * and Jetty's HTML error page from filters (CSRF) and unknown routes.
 */
export function errorMessage(text: string): string {
  try {
    const json: unknown = JSON.parse(text);
    if (typeof json === "string") return json;
    const msg = messageSchema.safeParse(json);
    if (msg.success) return msg.data.msg;
  } catch {
    const title = /<title>([^<]*)<\/title>/i.exec(text);
    if (title?.[1]) return title[1].trim();
  }
  return snippetOf(text);
}

function httpError(call: Call<unknown>, status: number, text: string): LivyError {
  const msg = errorMessage(text);
  const init = { status, msg, method: call.method, path: call.path };
  const sessionId = call.sessionId;
  if (sessionId === undefined) return new LivyHttpError(init);
  if (
    status === 404 &&
    (LIVY_MESSAGES.sessionNotFound.test(msg) || LIVY_MESSAGES.sessionAlreadyStopped.test(msg))
  ) {
    return new SessionGoneError(init, { sessionId });
  }
  if (status === 400 && LIVY_MESSAGES.sessionNotActive.test(msg)) {
    // Livy does not say which inactive state; the caller may ask (SessionMonitor does).
    return new SessionNotUsableError(sessionId, "inactive", { status, detail: msg });
  }
  const inState = LIVY_MESSAGES.sessionInState.exec(msg);
  if (status === 500 && inState?.[1]) {
    return new SessionNotUsableError(sessionId, inState[1], { status, detail: msg });
  }
  return new LivyHttpError(init, { sessionId });
}

function errorCode(err: unknown): string | undefined {
  // undici wraps socket errors (UND_ERR_SOCKET): the more telling code, if any, is on a cause.
  let found: string | undefined;
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    if (typeof e === "object" && "code" in e && typeof e.code === "string") {
      found = e.code;
      if (found !== "UND_ERR_SOCKET") return found;
    }
    e = e instanceof Error ? e.cause : undefined;
  }
  return found;
}

function queryString(query: Record<string, string | number | undefined> | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : "";
}

function lowerKeys(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

function withoutUndefined<T extends object>(body: T): Partial<T> {
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined)) as Partial<T>;
}
