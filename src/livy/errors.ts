/**
 * Every failure of the Livy client is one of these, so callers branch on `instanceof` or `code` instead
 * of parsing messages. `code` strings are stable API.
 */
import type { SessionState } from "./protocol.ts";

export type LivyErrorCode =
  | "LIVY_HTTP"
  | "LIVY_SESSION_GONE"
  | "LIVY_SESSION_NOT_USABLE"
  | "LIVY_STATEMENT_ERROR"
  | "LIVY_STATEMENT_CANCELLED"
  | "LIVY_UNREACHABLE"
  | "LIVY_TIMEOUT"
  | "LIVY_ABORTED"
  | "LIVY_PROTOCOL"
  | "LIVY_QUEUE_FULL";

export interface LivyErrorOptions {
  cause?: unknown;
  sessionId?: number;
}

export class LivyError extends Error {
  readonly code: LivyErrorCode;
  readonly sessionId: number | undefined;

  constructor(code: LivyErrorCode, message: string, options: LivyErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.sessionId = options.sessionId;
  }
}

/** A non-2xx answer from Livy. `msg` is Livy's `{"msg"}`, a bare JSON string body, or the page's text. */
export class LivyHttpError extends LivyError {
  readonly status: number;
  readonly msg: string;
  readonly method: string;
  readonly path: string;

  constructor(
    init: { status: number; msg: string; method: string; path: string },
    options: LivyErrorOptions & { code?: LivyErrorCode } = {},
  ) {
    super(
      options.code ?? "LIVY_HTTP",
      `${init.method} ${init.path}: HTTP ${init.status}: ${init.msg || "(empty body)"}`,
      options,
    );
    this.status = init.status;
    this.msg = init.msg;
    this.method = init.method;
    this.path = init.path;
  }
}

/** The session does not exist (any more): Livy answered 404 for it. */
export class SessionGoneError extends LivyHttpError {
  constructor(
    init: { status: number; msg: string; method: string; path: string },
    options: LivyErrorOptions = {},
  ) {
    super(init, { ...options, code: "LIVY_SESSION_GONE" });
  }
}

/**
 * The session exists but cannot take the request: still starting, dead, killed, its REPL in `error`, or
 * (`state` "unreachable") its server not answering. Raised without waiting, in fail-fast mode.
 */
export class SessionNotUsableError extends LivyError {
  readonly state: SessionState;
  /** Set when Livy itself refused the request. */
  readonly status: number | undefined;

  constructor(
    sessionId: number,
    state: SessionState,
    options: LivyErrorOptions & { status?: number; detail?: string } = {},
  ) {
    super(
      "LIVY_SESSION_NOT_USABLE",
      `session ${sessionId} is ${state}${options.detail ? `: ${options.detail}` : ""}`,
      { ...options, sessionId },
    );
    this.state = state;
    this.status = options.status;
  }
}

/** The statement ran and failed: Livy's error output, as the interpreter reported it. */
export class StatementError extends LivyError {
  readonly statementId: number;
  readonly ename: string;
  readonly evalue: string;
  readonly traceback: readonly string[];

  constructor(
    init: { sessionId: number; statementId: number; ename: string; evalue: string; traceback: string[] },
    options: LivyErrorOptions = {},
  ) {
    super("LIVY_STATEMENT_ERROR", `${init.ename}: ${init.evalue}`, { ...options, sessionId: init.sessionId });
    this.statementId = init.statementId;
    this.ename = init.ename;
    this.evalue = init.evalue;
    this.traceback = init.traceback;
  }
}

/** The statement ended `cancelled` (by this client or anyone else) before producing output. */
export class StatementCancelledError extends LivyError {
  readonly statementId: number;

  constructor(sessionId: number, statementId: number, options: LivyErrorOptions = {}) {
    super("LIVY_STATEMENT_CANCELLED", `statement ${statementId} of session ${sessionId} was cancelled`, {
      ...options,
      sessionId,
    });
    this.statementId = statementId;
  }
}

/** No HTTP answer at all: refused, reset, DNS failure, TLS failure. */
export class LivyUnreachableError extends LivyError {
  /** The low-level code (`ECONNREFUSED`, `ECONNRESET`, `ENOTFOUND`, `UND_ERR_SOCKET`, ...). */
  readonly reason: string;
  /**
   * False when the request certainly never reached the server (refused, no such host), so even a
   * non-idempotent request may be repeated.
   */
  readonly requestSent: boolean;

  constructor(
    init: { url: string; reason: string; requestSent: boolean; message?: string },
    options: LivyErrorOptions = {},
  ) {
    super(
      "LIVY_UNREACHABLE",
      `Livy at ${init.url} is unreachable (${init.reason})${init.message ? `: ${init.message}` : ""}`,
      options,
    );
    this.reason = init.reason;
    this.requestSent = init.requestSent;
  }
}

export class LivyTimeoutError extends LivyError {
  readonly timeoutMs: number;

  constructor(what: string, timeoutMs: number, options: LivyErrorOptions = {}) {
    super("LIVY_TIMEOUT", `${what} timed out after ${timeoutMs} ms`, options);
    this.timeoutMs = timeoutMs;
  }
}

/** The caller's AbortSignal fired, or the client or session was closed. */
export class LivyAbortError extends LivyError {
  constructor(what: string, reason?: unknown, options: LivyErrorOptions = {}) {
    const why = reason instanceof Error ? reason.message : reason === undefined ? "" : String(reason);
    super("LIVY_ABORTED", `${what} aborted${why ? `: ${why}` : ""}`, {
      ...options,
      cause: options.cause ?? reason,
    });
  }
}

/** Livy answered, but not with what the protocol says: not JSON, or JSON of the wrong shape. */
export class LivyProtocolError extends LivyError {
  /** The start of the offending body, for the log. */
  readonly snippet: string;

  constructor(message: string, snippet: string, options: LivyErrorOptions = {}) {
    super("LIVY_PROTOCOL", `${message}; body: ${JSON.stringify(snippet)}`, options);
    this.snippet = snippet;
  }
}

/** A session pool's queue is full and it was told to reject rather than wait. */
export class PoolQueueFullError extends LivyError {
  readonly limit: number;

  constructor(limit: number) {
    super("LIVY_QUEUE_FULL", `the session pool's queue is full (${limit} waiting)`);
    this.limit = limit;
  }
}

/**
 * Failures that may pass if the same idempotent request is repeated: no answer, a timeout of one
 * request, or a gateway or server error. Not: 4xx answers, protocol errors, aborts.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof LivyUnreachableError) return true;
  if (err instanceof LivyTimeoutError) return true;
  if (err instanceof LivyHttpError && !(err instanceof SessionGoneError)) {
    return err.status === 429 || err.status >= 500;
  }
  return false;
}

/** Cuts a body down to what is worth quoting in an error message. */
export function snippetOf(body: string, max = 300): string {
  const flat = body.trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}
