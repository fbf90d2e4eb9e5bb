/**
 * StatementHandle: what `submit()` gives back once Livy has accepted a statement. The session's monitor
 * feeds it fresh views of the statement; the handle turns them into events, an async iterator of
 * state changes, and the settled `result`.
 */
import { type LivyError, StatementCancelledError } from "./errors.ts";
import { isStatementDone, type Statement, type StatementState } from "./protocol.ts";
import { type StatementResult, statementResult } from "./result.ts";
import type { WaitOptions } from "./wait.ts";

/** Polls of an `available` statement without output before it counts as a protocol error. */
const MAX_EMPTY_AVAILABLE = 20;

export interface StatementStateChange {
  state: StatementState;
  progress: number;
  statement: Statement;
}

export interface StatementEvents {
  state: (change: StatementStateChange) => void;
  progress: (progress: number, statement: Statement) => void;
}

/** The monitor's side of a handle. */
export interface TrackedStatement {
  readonly id: number;
  /** Rejected at once when the session is unreachable; otherwise kept while the monitor retries. */
  readonly failFast: boolean;
  readonly done: boolean;
  /** Applies a fresh view from Livy; true when state or progress changed. */
  update(statement: Statement): boolean;
  /** Ends the statement's wait with a failure that is not the statement's own (session dead, abort...). */
  fail(err: LivyError): void;
}

type Listeners = { [K in keyof StatementEvents]: Set<StatementEvents[K]> };

export class StatementHandle implements AsyncIterable<StatementStateChange> {
  readonly id: number;
  readonly sessionId: number;
  readonly code: string;
  /** Resolves to the typed output; rejects with StatementError, StatementCancelledError, or why it was lost. */
  readonly result: Promise<StatementResult>;
  #statement: Statement;
  #done = false;
  #availableWithoutOutput = 0;
  /** Set when the wait ended for a reason other than the statement's own outcome. */
  #failure: LivyError | undefined;
  #resolve!: (result: StatementResult) => void;
  #reject!: (err: unknown) => void;
  readonly #listeners: Listeners = { state: new Set(), progress: new Set() };
  readonly #endListeners = new Set<() => void>();
  readonly #cancel: (opts: WaitOptions) => Promise<void>;

  private constructor(init: {
    sessionId: number;
    code: string;
    statement: Statement;
    cancel: (opts: WaitOptions) => Promise<void>;
  }) {
    this.id = init.statement.id;
    this.sessionId = init.sessionId;
    this.code = init.code;
    this.#statement = init.statement;
    this.#cancel = init.cancel;
    this.result = new Promise<StatementResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // A handle may be dropped once submitted (fire and forget); its rejection must not crash the process.
    // Whoever awaits `result` still sees it.
    this.result.catch(() => {});
  }

  /** Creates a handle and the interface through which the monitor drives it. */
  static create(init: {
    sessionId: number;
    code: string;
    statement: Statement;
    failFast: boolean;
    cancel: (opts: WaitOptions) => Promise<void>;
  }): { handle: StatementHandle; tracked: TrackedStatement } {
    const handle = new StatementHandle(init);
    const tracked: TrackedStatement = {
      id: handle.id,
      failFast: init.failFast,
      get done() {
        return handle.#done;
      },
      update: (statement) => handle.#update(statement),
      fail: (err) => handle.#fail(err),
    };
    handle.#settleIfDone();
    return { handle, tracked };
  }

  /** The latest view of the statement Livy gave. */
  get statement(): Statement {
    return this.#statement;
  }

  get state(): StatementState {
    return this.#statement.state;
  }

  get progress(): number {
    return this.#statement.progress ?? 0;
  }

  get done(): boolean {
    return this.#done;
  }

  /**
   * Asks Livy to cancel. Resolves when Livy accepted the request; `result` then rejects with
   * StatementCancelledError once Livy reports the statement `cancelled` (a running statement passes
   * through `cancelling` first, which can take a while).
   */
  async cancel(opts: WaitOptions = {}): Promise<void> {
    if (this.#done) return;
    await this.#cancel(opts);
  }

  on<K extends keyof StatementEvents>(event: K, listener: StatementEvents[K]): this {
    this.#listeners[event].add(listener);
    return this;
  }

  off<K extends keyof StatementEvents>(event: K, listener: StatementEvents[K]): this {
    this.#listeners[event].delete(listener);
    return this;
  }

  /**
   * State changes from now on, starting with the current state, ending after the final one. Throws if
   * the statement was lost (session dead, unreachable, aborted); a statement that failed or was
   * cancelled ends normally (its `result` says how).
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<StatementStateChange, void, undefined> {
    const queue: StatementStateChange[] = [this.#change()];
    let wake: (() => void) | undefined;
    const onState = (change: StatementStateChange) => {
      queue.push(change);
      wake?.();
    };
    const onEnd = () => wake?.();
    this.#listeners.state.add(onState);
    this.#endListeners.add(onEnd);
    try {
      for (;;) {
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.#done) {
          if (this.#failure) throw this.#failure;
          return;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      this.#listeners.state.delete(onState);
      this.#endListeners.delete(onEnd);
    }
  }

  #change(): StatementStateChange {
    return { state: this.#statement.state, progress: this.progress, statement: this.#statement };
  }

  #update(statement: Statement): boolean {
    if (this.#done) return false;
    const before = this.#statement;
    this.#statement = statement;
    const stateChanged = statement.state !== before.state;
    const progressChanged = (statement.progress ?? 0) !== (before.progress ?? 0);
    if (stateChanged) {
      const change = this.#change();
      for (const l of this.#listeners.state) l(change);
    }
    if (progressChanged) {
      for (const l of this.#listeners.progress) l(this.progress, statement);
    }
    this.#settleIfDone();
    return stateChanged || progressChanged;
  }

  #settleIfDone(): void {
    const statement = this.#statement;
    if (this.#done || !isStatementDone(statement.state)) return;
    if (statement.state === "cancelled") {
      this.#end(() => this.#reject(new StatementCancelledError(this.sessionId, this.id)));
      return;
    }
    // Real Livy can report `available` a moment before it sets the output: keep polling a bounded while.
    if (
      statement.state === "available" &&
      !statement.output &&
      ++this.#availableWithoutOutput < MAX_EMPTY_AVAILABLE
    ) {
      return;
    }
    try {
      const result = statementResult(this.sessionId, statement);
      this.#end(() => this.#resolve(result));
    } catch (err) {
      this.#end(() => this.#reject(err));
    }
  }

  #fail(err: LivyError): void {
    if (this.#done) return;
    this.#failure = err;
    this.#end(() => this.#reject(err));
  }

  #end(settle: () => void): void {
    this.#done = true;
    settle();
    for (const l of this.#endListeners) l();
  }
}
