/**
 * One monitor per Livy session: it follows every in-flight statement of that session with a single
 * `GET /sessions/{id}/statements?order=desc&size=N` per tick, N just large enough to reach the oldest
 * in-flight id. The cost of monitoring thus grows with sessions, not statements. Ticks come fast right
 * after a submission or a change (short statements finish in milliseconds) and back off while nothing
 * changes (long statements), and stop when nothing is in flight.
 */
import type { LivyClient } from "./client.ts";
import {
  isTransient,
  LivyAbortError,
  LivyError,
  LivyHttpError,
  LivyProtocolError,
  LivyUnreachableError,
  SessionGoneError,
  SessionNotUsableError,
} from "./errors.ts";
import { isSessionStarting, type SessionState, type Statement } from "./protocol.ts";
import type { TrackedStatement } from "./statement.ts";

export interface MonitorOptions {
  /**
   * First poll after a submission or a change. Short: a trivial statement finishes within milliseconds,
   * and the cost of an early poll is one cheap request.
   */
  firstPollMs: number;
  /** Interval the polls continue with, growing by `backoffFactor` while nothing changes. */
  minIntervalMs: number;
  /** Ceiling the interval backs off to while nothing changes. */
  maxIntervalMs: number;
  /** Growth of the interval per unchanged tick. */
  backoffFactor: number;
  /**
   * Largest `size` of one list request. In-flight statements older than the window (others submitted
   * many newer ones) are read one by one.
   */
  maxWindow: number;
  /** How long statements of resilient sessions survive an unreachable server before they are rejected. */
  maxOutageMs: number;
  /**
   * Shortest interval while a burst of the session's statements is still being submitted (at least
   * `burstPending` submissions not answered yet). Livy's list route reads every retained statement from the
   * driver (and updates each one's progress) whatever `size` asks for, on the same RPC channel the
   * submissions need: polling fast during a burst made each submission take twice as long on real Livy. The
   * burst's results cannot all be there before its last statement is accepted anyway; then polling is fast
   * again. A steady trickle (a SessionPool's one or two in flight per session) is not a burst: its results
   * are polled for at once.
   */
  burstIntervalMs: number;
  /** Submissions of the session not answered yet from which polling slows to `burstIntervalMs`. */
  burstPending: number;
}

export const DEFAULT_MONITOR_OPTIONS: MonitorOptions = {
  firstPollMs: 2,
  minIntervalMs: 5,
  maxIntervalMs: 1_000,
  backoffFactor: 1.5,
  maxWindow: 100,
  maxOutageMs: 60_000,
  burstIntervalMs: 250,
  burstPending: 4,
};

const WINDOW_SLACK = 2;

/** What the client knows besides Livy's own states. */
export type KnownSessionState = SessionState | "gone" | "unreachable" | "inactive";

export interface MonitorStats {
  /** Polls made (one list request each). */
  ticks: number;
  /** Per-statement GETs made because an in-flight statement fell out of the list window. */
  fallbackRequests: number;
}

export class SessionMonitor {
  readonly sessionId: number;
  /** The last state learnt from any request about this session; undefined until something was learnt. */
  knownState: KnownSessionState | undefined;
  readonly #client: LivyClient;
  readonly #options: MonitorOptions;
  readonly #closeSignal: AbortSignal;
  readonly #tracked = new Map<number, TrackedStatement>();
  #timer: NodeJS.Timeout | undefined;
  #timerDue = 0;
  #ticking = false;
  #hurry = false;
  #interval: number;
  #maxSeenId = -1;
  #outageSince: number | undefined;
  #closed = false;
  readonly #stats: MonitorStats = { ticks: 0, fallbackRequests: 0 };

  constructor(
    client: LivyClient,
    sessionId: number,
    options: Partial<MonitorOptions>,
    closeSignal: AbortSignal,
  ) {
    this.#client = client;
    this.sessionId = sessionId;
    this.#options = { ...DEFAULT_MONITOR_OPTIONS, ...options };
    this.#interval = this.#options.firstPollMs;
    this.#closeSignal = closeSignal;
  }

  get inFlight(): number {
    this.#prune();
    return this.#tracked.size;
  }

  stats(): MonitorStats {
    return { ...this.#stats };
  }

  /** Notes an id Livy assigned, so the list window reaches from the newest statement to the oldest tracked. */
  noteStatementId(id: number): void {
    if (id > this.#maxSeenId) this.#maxSeenId = id;
  }

  track(statement: TrackedStatement): void {
    if (this.#closed || statement.done) return;
    this.#tracked.set(statement.id, statement);
    this.noteStatementId(statement.id);
    this.#hurryUp();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#failWhere(
      () => true,
      new LivyAbortError(`statement of session ${this.sessionId}`, this.#closeSignal.reason),
    );
  }

  /** Polls soon: a statement was just submitted and may finish within milliseconds. */
  #hurryUp(): void {
    this.#interval = this.#options.firstPollMs;
    if (this.#ticking) {
      this.#hurry = true;
      return;
    }
    const first = this.#submitting() ? this.#options.burstIntervalMs : this.#options.firstPollMs;
    const due = Date.now() + first;
    // Keep an earlier timer: rescheduling on every submit would starve a busy submitter's polls.
    if (this.#timer && this.#timerDue <= due) return;
    this.#schedule(first);
  }

  /** A burst of this session's statements is still on its way to Livy. */
  #submitting(): boolean {
    return this.#client.pendingSubmissions(this.sessionId) >= this.#options.burstPending;
  }

  #schedule(ms: number): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerDue = Date.now() + ms;
    this.#timer = setTimeout(() => void this.#tick(), ms);
  }

  #prune(): void {
    for (const [id, t] of this.#tracked) if (t.done) this.#tracked.delete(id);
  }

  async #tick(): Promise<void> {
    this.#timer = undefined;
    this.#prune();
    if (this.#closed || this.#tracked.size === 0) return;
    this.#ticking = true;
    this.#hurry = false;
    let changed = false;
    try {
      changed = await this.#poll();
      this.#outageSince = undefined;
    } catch (err) {
      await this.#onPollError(err);
    } finally {
      this.#ticking = false;
    }
    this.#prune();
    if (this.#closed || this.#tracked.size === 0) {
      this.#interval = this.#options.firstPollMs;
      return;
    }
    const { firstPollMs, minIntervalMs, maxIntervalMs, backoffFactor } = this.#options;
    this.#interval =
      changed || this.#hurry
        ? firstPollMs
        : Math.min(maxIntervalMs, Math.max(minIntervalMs, this.#interval * backoffFactor));
    this.#schedule(
      this.#submitting() ? Math.max(this.#interval, this.#options.burstIntervalMs) : this.#interval,
    );
  }

  /** One list request for all in-flight statements; true when any of them changed. */
  async #poll(): Promise<boolean> {
    const ids = [...this.#tracked.keys()];
    const oldest = Math.min(...ids);
    const newest = Math.max(this.#maxSeenId, ...ids);
    // Submissions still under way may land before this poll does and push the oldest out of a tight
    // window: leave room for them (and a little for other clients) rather than fall back per statement.
    const slack = this.#client.pendingSubmissions(this.sessionId) + WINDOW_SLACK;
    const size = Math.max(1, Math.min(this.#options.maxWindow, newest - oldest + 1 + slack));
    this.#stats.ticks++;
    const signal = this.#closeSignal;
    const list = await this.#client.listStatements(this.sessionId, { order: "desc", size, signal });
    if (this.knownState === "unreachable" || this.knownState === undefined) this.knownState = "busy";
    let changed = false;
    const seen = new Set<number>();
    for (const statement of list.statements) {
      seen.add(statement.id);
      this.noteStatementId(statement.id);
      changed = this.#apply(statement) || changed;
    }
    const missing = [...this.#tracked.values()].filter((t) => !t.done && !seen.has(t.id));
    const fetched = await Promise.all(
      missing.map(async (t): Promise<boolean> => {
        this.#stats.fallbackRequests++;
        try {
          return this.#apply(await this.#client.getStatement(this.sessionId, t.id, { signal }));
        } catch (err) {
          // The session answered but the statement is gone: evicted from Livy's retained statements.
          if (err instanceof LivyHttpError && err.status === 404 && !(err instanceof SessionGoneError)) {
            t.fail(err);
            return true;
          }
          throw err;
        }
      }),
    );
    return fetched.some(Boolean) || changed;
  }

  #apply(statement: Statement): boolean {
    const t = this.#tracked.get(statement.id);
    return t !== undefined && !t.done && t.update(statement);
  }

  async #onPollError(err: unknown): Promise<void> {
    if (this.#closed || this.#closeSignal.aborted) return;
    if (err instanceof SessionGoneError) {
      this.knownState = "gone";
      this.#failWhere(() => true, err);
      return;
    }
    if (err instanceof SessionNotUsableError) {
      const state = err.state === "inactive" ? await this.#stateAfterInactive() : err.state;
      this.knownState = state;
      const precise =
        state === err.state
          ? err
          : new SessionNotUsableError(this.sessionId, state, { status: err.status, cause: err });
      // A recovering Livy server brings sessions back: only fail-fast statements give up on it.
      this.#failWhere((t) => t.failFast || !isSessionStarting(state), precise);
      return;
    }
    if (isTransient(err)) {
      const error = err as LivyError;
      if (error instanceof LivyUnreachableError) this.knownState = "unreachable";
      this.#outageSince ??= Date.now();
      const outageOver = Date.now() - this.#outageSince > this.#options.maxOutageMs;
      this.#failWhere((t) => t.failFast || outageOver, error);
      return;
    }
    this.#failWhere(() => true, err instanceof LivyError ? err : unexpected(err));
  }

  /** Livy says "isn't active" without the state; the state route still answers for finished sessions. */
  async #stateAfterInactive(): Promise<KnownSessionState> {
    try {
      const res = await this.#client.getSessionState(this.sessionId, {
        signal: this.#closeSignal,
        timeoutMs: 5_000,
      });
      return res.state;
    } catch (err) {
      return err instanceof SessionGoneError ? "gone" : "inactive";
    }
  }

  #failWhere(predicate: (t: TrackedStatement) => boolean, err: LivyError): void {
    for (const [id, t] of this.#tracked) {
      if (t.done || predicate(t)) {
        this.#tracked.delete(id);
        if (!t.done) t.fail(err);
      }
    }
  }
}

/** Only a bug gets here: the client turns every failure into a LivyError. */
function unexpected(err: unknown): LivyError {
  return new LivyProtocolError(`monitoring failed: ${err instanceof Error ? err.message : String(err)}`, "", {
    cause: err,
  });
}
