/**
 * InteractiveSession: submitting statements to one Livy session and getting their results.
 *
 * Two modes. `failFast` (the default, for interactive work): a session that is not usable is reported at
 * once, nothing is retried, and in-flight statements are rejected the moment the session dies or its
 * server stops answering. `resilient`: submissions wait until the session is usable, reads are retried
 * with backoff, and in-flight statements survive short outages. Both are bounded by signals and timeouts.
 */
import type { z } from "zod";
import type { LivyClient, RetryPolicy } from "./client.ts";
import { isTransient, LivyUnreachableError, SessionGoneError, SessionNotUsableError } from "./errors.ts";
import type { KnownSessionState, MonitorStats, SessionMonitor } from "./monitor.ts";
import {
  isSessionStarting,
  isSessionTerminal,
  isSessionUsable,
  type SessionLog,
  type SessionStateResponse,
  type Statement,
  type StatementKind,
} from "./protocol.ts";
import { type StatementResult, type TableRow, tableRows } from "./result.ts";
import { StatementHandle } from "./statement.ts";
import { type BackoffPolicy, backoffDelay, Deadline, sleep, type WaitOptions } from "./wait.ts";

export type SessionMode = "failFast" | "resilient";

export interface SessionOptions {
  /** Default `failFast`. */
  mode?: SessionMode;
  /** Resilient mode: retries of reads. */
  retry?: RetryPolicy;
  /** Resilient mode: how long a submission waits for the session to become usable, unless its own timeout is shorter. */
  waitTimeoutMs?: number;
}

export interface SubmitOptions {
  kind?: StatementKind;
  /** Aborting rejects the submission or `result` with LivyAbortError and cancels the statement in Livy. */
  signal?: AbortSignal;
  /** Bounds the whole statement, submission to result; when it passes the statement is cancelled in Livy. */
  timeoutMs?: number;
}

export interface WaitForStateOptions extends WaitOptions {
  /** First poll interval; polls back off to 1 s. */
  pollMs?: number;
}

export const DEFAULT_RESILIENT_RETRY: RetryPolicy = {
  retries: 5,
  minDelayMs: 100,
  maxDelayMs: 5_000,
  factor: 2,
};
const DEFAULT_WAIT_TIMEOUT_MS = 5 * 60_000;
/** Times a resilient session sends a statement Livy refused unseen (starting session, refused connection). */
const MAX_RESENDS = 20;
const STATE_POLL: BackoffPolicy = { minDelayMs: 100, maxDelayMs: 1_000, factor: 1.5 };

/** States after which the session will not take statements again. */
export function isKnownDead(state: KnownSessionState | undefined): state is KnownSessionState {
  return state !== undefined && (isSessionTerminal(state) || state === "gone" || state === "inactive");
}

export class InteractiveSession {
  readonly id: number;
  readonly mode: SessionMode;
  readonly client: LivyClient;
  readonly #monitor: SessionMonitor;
  readonly #retry: RetryPolicy | false;
  readonly #waitTimeoutMs: number;

  constructor(client: LivyClient, monitor: SessionMonitor, options: SessionOptions = {}) {
    this.client = client;
    this.id = monitor.sessionId;
    this.#monitor = monitor;
    this.mode = options.mode ?? "failFast";
    this.#retry = this.mode === "resilient" ? (options.retry ?? DEFAULT_RESILIENT_RETRY) : false;
    this.#waitTimeoutMs = options.waitTimeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
  }

  /** What the client last learnt about the session: Livy's state, or `gone`/`unreachable`/`inactive`. */
  get state(): KnownSessionState | undefined {
    return this.#monitor.knownState;
  }

  /** Statements of this session still awaited by this client. */
  get inFlight(): number {
    return this.#monitor.inFlight;
  }

  monitorStats(): MonitorStats {
    return this.#monitor.stats();
  }

  /**
   * Submits `code` and resolves as soon as Livy accepted it, with a handle whose `result` settles when it
   * finishes. Any number may be in flight; Livy runs them one at a time, in submission order.
   */
  async submit(code: string, options: SubmitOptions = {}): Promise<StatementHandle> {
    const deadline = new Deadline(
      `statement in session ${this.id}`,
      { signal: options.signal, timeoutMs: options.timeoutMs },
      [this.client.closeSignal],
    );
    let statement: Statement;
    try {
      statement = await this.#post(code, options.kind, deadline);
    } catch (err) {
      deadline.dispose();
      throw err;
    }
    const { handle, tracked } = StatementHandle.create({
      sessionId: this.id,
      code,
      statement,
      failFast: this.mode === "failFast",
      cancel: async (opts) => {
        await this.client.cancelStatement(this.id, statement.id, opts);
      },
    });
    const onDeadline = () => {
      if (tracked.done) return;
      tracked.fail(deadline.signal.reason);
      // Nobody waits for it any more: free the session for the statements behind it.
      this.#cancelQuietly(statement.id);
    };
    deadline.signal.addEventListener("abort", onDeadline, { once: true });
    const cleanup = () => {
      deadline.signal.removeEventListener("abort", onDeadline);
      deadline.dispose();
    };
    void handle.result.then(cleanup, cleanup);
    this.#monitor.track(tracked);
    return handle;
  }

  /** Submits and waits for the result. */
  async run(code: string, options: SubmitOptions = {}): Promise<StatementResult> {
    const handle = await this.submit(code, options);
    return handle.result;
  }

  /**
   * Runs a Spark SQL query (a `sql` statement) and gives its rows as objects, typed and checked by `schema`
   * when given (see tableRows):
   * `const rows = await session.sql("SELECT id FROM range(3)", z.object({ id: z.number() }))`.
   */
  async sql(query: string, options?: Omit<SubmitOptions, "kind">): Promise<TableRow[]>;
  async sql<S extends z.ZodType>(
    query: string,
    schema: S,
    options?: Omit<SubmitOptions, "kind">,
  ): Promise<Array<z.output<S>>>;
  async sql(
    query: string,
    schemaOrOptions?: z.ZodType | Omit<SubmitOptions, "kind">,
    maybeOptions: Omit<SubmitOptions, "kind"> = {},
  ): Promise<unknown[]> {
    const schema = isZod(schemaOrOptions) ? schemaOrOptions : undefined;
    const options = isZod(schemaOrOptions) ? maybeOptions : (schemaOrOptions ?? {});
    const result = await this.run(query, { ...options, kind: "sql" });
    return schema ? tableRows(result, schema) : tableRows(result);
  }

  /** Waits until the session is `idle`. Rejects with SessionNotUsableError once it reaches a final state. */
  waitForIdle(options: WaitForStateOptions = {}): Promise<SessionStateResponse> {
    return this.#waitFor((s) => s === "idle", "idle", options);
  }

  /** Waits until the session takes statements (`idle` or `busy`). */
  waitUntilUsable(options: WaitForStateOptions = {}): Promise<SessionStateResponse> {
    return this.#waitFor(isSessionUsable, "usable", options);
  }

  /** Reads the session's state from Livy (and remembers it). */
  async refreshState(options: WaitOptions = {}): Promise<SessionStateResponse> {
    const res = await this.#read(() =>
      this.client.getSessionState(this.id, { ...requestOpts(options), retry: this.#retry }),
    );
    this.#monitor.knownState = res.state;
    return res;
  }

  async statement(statementId: number, options: WaitOptions = {}): Promise<Statement> {
    return this.#read(() =>
      this.client.getStatement(this.id, statementId, { ...requestOpts(options), retry: this.#retry }),
    );
  }

  async cancel(statementId: number, options: WaitOptions = {}): Promise<void> {
    await this.#read(() => this.client.cancelStatement(this.id, statementId, requestOpts(options)));
  }

  async log(options: WaitOptions & { from?: number; size?: number } = {}): Promise<SessionLog> {
    return this.#read(() =>
      this.client.sessionLog(this.id, {
        ...requestOpts(options),
        retry: this.#retry,
        ...(options.from === undefined ? {} : { from: options.from }),
        ...(options.size === undefined ? {} : { size: options.size }),
      }),
    );
  }

  /** Deletes the Livy session (stopping its Spark context). */
  async delete(options: WaitOptions = {}): Promise<void> {
    await this.#read(() => this.client.deleteSession(this.id, requestOpts(options)));
    this.#monitor.knownState = "gone";
  }

  async #post(code: string, kind: StatementKind | undefined, deadline: Deadline): Promise<Statement> {
    const monitor = this.#monitor;
    deadline.throwIfDone();
    const resilient = this.mode === "resilient";
    try {
      // The session's statements go out in submission order (client.submitStatement): what is checked or
      // waited for before each one runs in that order too, so a wait holds back the statements behind it.
      const statement = await this.client.submitStatement(this.id, code, {
        signal: deadline.signal,
        ...(kind === undefined ? {} : { kind }),
        beforeSend: async () => {
          const known = monitor.knownState;
          if (isKnownDead(known)) throw new SessionNotUsableError(this.id, known);
          if (resilient && known !== undefined && !isSessionUsable(known)) {
            await this.#waitFor(isSessionUsable, "usable", {
              signal: deadline.signal,
              timeoutMs: this.#waitTimeoutMs,
            });
          }
        },
        resendWhen: (err, attempt) => {
          // called in submission order, as the answers come: what it learns holds back the statements behind
          this.#learn(err);
          return resilient && attempt < MAX_RESENDS && this.#mayRepost(err);
        },
      });
      monitor.noteStatementId(statement.id);
      if (!isSessionUsable(monitor.knownState ?? "")) monitor.knownState = "busy";
      return statement;
    } catch (err) {
      this.#learn(err);
      throw err;
    }
  }

  /** A POST may be repeated only when Livy certainly did not create the statement. */
  #mayRepost(err: unknown): boolean {
    if (err instanceof SessionNotUsableError) return isSessionStarting(err.state);
    if (err instanceof LivyUnreachableError) return !err.requestSent;
    return false;
  }

  async #waitFor(
    predicate: (state: string) => boolean,
    what: string,
    options: WaitForStateOptions,
  ): Promise<SessionStateResponse> {
    const deadline = new Deadline(
      `waiting for session ${this.id} to be ${what}`,
      { signal: options.signal, timeoutMs: options.timeoutMs ?? this.#waitTimeoutMs },
      [this.client.closeSignal],
    );
    const poll: BackoffPolicy = { ...STATE_POLL, minDelayMs: options.pollMs ?? STATE_POLL.minDelayMs };
    try {
      for (let attempt = 0; ; attempt++) {
        let res: SessionStateResponse | undefined;
        try {
          res = await this.client.getSessionState(this.id, { signal: deadline.signal });
        } catch (err) {
          this.#learn(err);
          if (deadline.signal.aborted) throw deadline.signal.reason;
          if (this.mode === "failFast" || !isTransient(err)) throw err;
        }
        if (res) {
          this.#monitor.knownState = res.state;
          if (predicate(res.state)) return res;
          if (isSessionTerminal(res.state)) throw new SessionNotUsableError(this.id, res.state);
        }
        await sleep(
          backoffDelay(poll, attempt, () => 1),
          deadline.signal,
        );
      }
    } finally {
      deadline.dispose();
    }
  }

  async #read<T>(request: () => Promise<T>): Promise<T> {
    try {
      const value = await request();
      if (this.#monitor.knownState === "unreachable") this.#monitor.knownState = undefined;
      return value;
    } catch (err) {
      this.#learn(err);
      throw err;
    }
  }

  /** Errors say something about the session; remember it so fail-fast submissions do not ask again. */
  #learn(err: unknown): void {
    if (err instanceof SessionGoneError) this.#monitor.knownState = "gone";
    else if (err instanceof SessionNotUsableError) this.#monitor.knownState = err.state;
    else if (err instanceof LivyUnreachableError) this.#monitor.knownState = "unreachable";
  }

  #cancelQuietly(statementId: number): void {
    if (this.client.closed) return;
    this.client.cancelStatement(this.id, statementId, { timeoutMs: 5_000 }).catch(() => {});
  }
}

/**
 * A session this client created (`client.startSession`): disposing it deletes it in Livy, so
 * `await using` ends the Spark application with the block. Deleting one already gone is not an error.
 */
export class OwnedSession extends InteractiveSession {
  #disposed = false;

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed || this.client.closed) return;
    this.#disposed = true;
    await this.delete({ timeoutMs: 30_000 }).catch((err: unknown) => {
      if (!(err instanceof SessionGoneError)) throw err;
    });
  }
}

function isZod(value: unknown): value is z.ZodType {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { safeParse?: unknown }).safeParse === "function"
  );
}

function requestOpts(options: WaitOptions): { signal?: AbortSignal; timeoutMs?: number } {
  return {
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  };
}
