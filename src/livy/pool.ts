/**
 * SessionPool: real parallelism over several Livy sessions (Livy runs one statement at a time per
 * session). Statements wait in the pool's bounded queue and are dispatched to the least busy usable
 * session; a full queue pushes back on the producer (submit waits) or refuses (PoolQueueFullError).
 */
import { LivyAbortError, PoolQueueFullError, SessionNotUsableError } from "./errors.ts";
import type { StatementResult } from "./result.ts";
import { type InteractiveSession, isKnownDead, type SubmitOptions } from "./session.ts";
import type { StatementHandle } from "./statement.ts";
import { Deadline, type WaitOptions } from "./wait.ts";

export interface SessionPoolOptions {
  /**
   * Statements handed to one session at a time, default 4. More than one keeps a session busy without
   * gaps (the next statements already wait in Livy's queue while the client learns that one finished);
   * the rest stay in the pool for whichever session frees first. With 20 ms statements, 1 left sessions
   * idle a third of the time and 4 came within 5% of the floor (bench/run.ts).
   */
  maxInFlightPerSession?: number;
  /** Statements waiting in the pool, default 1000. */
  maxQueue?: number;
  /** When the queue is full: `wait` for room (default) or `reject` with PoolQueueFullError. */
  whenFull?: "wait" | "reject";
}

export interface PooledStatement {
  /** The session's handle, once a session accepted the statement. */
  readonly dispatched: Promise<StatementHandle>;
  readonly result: Promise<StatementResult>;
  /** Removes it from the queue, or cancels it in Livy once dispatched. */
  cancel(options?: WaitOptions): Promise<void>;
}

interface Item {
  code: string;
  options: SubmitOptions;
  deadline: Deadline;
  dispatch: (handle: StatementHandle) => void;
  fail: (err: unknown) => void;
  handle: StatementHandle | undefined;
  settled: boolean;
}

interface Waiter {
  admit: () => void;
  fail: (err: unknown) => void;
}

export class SessionPool {
  readonly sessions: readonly InteractiveSession[];
  readonly #maxPerSession: number;
  readonly #maxQueue: number;
  readonly #whenFull: "wait" | "reject";
  readonly #load: Map<InteractiveSession, number>;
  readonly #queue: Item[] = [];
  readonly #waiters: Waiter[] = [];
  readonly #closing = new AbortController();
  #next = 0;

  constructor(sessions: readonly InteractiveSession[], options: SessionPoolOptions = {}) {
    if (sessions.length === 0) throw new Error("a session pool needs at least one session");
    this.sessions = [...sessions];
    this.#maxPerSession = Math.max(1, options.maxInFlightPerSession ?? 4);
    this.#maxQueue = Math.max(0, options.maxQueue ?? 1_000);
    this.#whenFull = options.whenFull ?? "wait";
    this.#load = new Map(sessions.map((s) => [s, 0]));
  }

  /** Statements waiting for a session. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Statements dispatched by this pool and not finished, per session in pool order. */
  load(): number[] {
    return this.sessions.map((s) => this.#load.get(s) ?? 0);
  }

  /**
   * Queues a statement. Resolves once it is in the queue (or already dispatched); with a full queue it
   * waits for room or rejects, as configured. `signal`/`timeoutMs` bound the whole statement.
   */
  async submit(code: string, options: SubmitOptions = {}): Promise<PooledStatement> {
    if (this.#closing.signal.aborted) throw new LivyAbortError("pooled statement", "pool closed");
    // Not tied to the pool's closing: close() rejects only what has not reached a session yet.
    const deadline = new Deadline("pooled statement", options);
    try {
      await this.#admission(deadline);
    } catch (err) {
      deadline.dispose();
      throw err;
    }
    let dispatch!: (handle: StatementHandle) => void;
    let fail!: (err: unknown) => void;
    const dispatched = new Promise<StatementHandle>((resolve, reject) => {
      dispatch = resolve;
      fail = reject;
    });
    const item: Item = { code, options, deadline, dispatch, fail, handle: undefined, settled: false };
    const result = dispatched.then((handle) => handle.result);
    // Callers often only await `result`; neither promise may count as an unhandled rejection.
    dispatched.catch(() => {});
    result.catch(() => {});
    void result.then(
      () => deadline.dispose(),
      () => deadline.dispose(),
    );
    deadline.signal.addEventListener("abort", () => this.#drop(item, deadline.signal.reason), { once: true });
    this.#queue.push(item);
    this.#pump();
    return {
      dispatched,
      result,
      cancel: async (opts: WaitOptions = {}) => {
        if (item.handle) return item.handle.cancel(opts);
        this.#drop(item, new LivyAbortError("pooled statement", "cancelled before dispatch"));
      },
    };
  }

  /** Submits and waits for the result. */
  async run(code: string, options: SubmitOptions = {}): Promise<StatementResult> {
    return (await this.submit(code, options)).result;
  }

  /** Rejects everything still queued or waiting for room; dispatched statements and sessions are left alone. */
  close(): void {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort(new Error("pool closed"));
    const err = new LivyAbortError("pooled statement", "pool closed");
    for (const item of this.#queue.splice(0)) this.#settle(item, err);
    for (const w of this.#waiters.splice(0)) w.fail(err);
  }

  async #admission(deadline: Deadline): Promise<void> {
    deadline.throwIfDone();
    if (this.#queue.length < this.#maxQueue && this.#waiters.length === 0) return;
    if (this.#whenFull === "reject") throw new PoolQueueFullError(this.#maxQueue);
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        admit: () => {
          deadline.signal.removeEventListener("abort", onAbort);
          resolve();
        },
        fail: reject,
      };
      const onAbort = () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(deadline.signal.reason);
      };
      deadline.signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      if (this.sessions.every((s) => isKnownDead(s.state))) {
        const last = this.sessions[this.sessions.length - 1];
        const err = new SessionNotUsableError(last?.id ?? -1, String(last?.state), {
          detail: "no session of the pool is usable",
        });
        for (const item of this.#queue.splice(0)) this.#settle(item, err);
        break;
      }
      const session = this.#pick();
      if (!session) break;
      const item = this.#queue.shift();
      if (!item) break;
      this.#dispatch(session, item);
    }
    while (this.#waiters.length > 0 && this.#queue.length < this.#maxQueue) this.#waiters.shift()?.admit();
  }

  /** The least loaded usable session with room; ties go round-robin so work spreads evenly. */
  #pick(): InteractiveSession | undefined {
    let best: InteractiveSession | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    const n = this.sessions.length;
    for (let k = 0; k < n; k++) {
      const s = this.sessions[(this.#next + k) % n];
      if (!s || isKnownDead(s.state)) continue;
      const load = this.#load.get(s) ?? 0;
      if (load < this.#maxPerSession && load < bestLoad) {
        best = s;
        bestLoad = load;
      }
    }
    if (best) this.#next = (this.sessions.indexOf(best) + 1) % n;
    return best;
  }

  #dispatch(session: InteractiveSession, item: Item): void {
    this.#load.set(session, (this.#load.get(session) ?? 0) + 1);
    const release = () => {
      this.#load.set(session, (this.#load.get(session) ?? 1) - 1);
      this.#pump();
    };
    const { kind } = item.options;
    session.submit(item.code, { signal: item.deadline.signal, ...(kind === undefined ? {} : { kind }) }).then(
      (handle) => {
        item.handle = handle;
        item.settled = true;
        item.dispatch(handle);
        void handle.result.then(release, release);
      },
      (err: unknown) => {
        this.#settle(item, err);
        release();
      },
    );
  }

  #drop(item: Item, err: unknown): void {
    const i = this.#queue.indexOf(item);
    if (i < 0) return;
    this.#queue.splice(i, 1);
    this.#settle(item, err);
    this.#pump();
  }

  #settle(item: Item, err: unknown): void {
    if (item.settled) return;
    item.settled = true;
    item.fail(err);
  }
}
