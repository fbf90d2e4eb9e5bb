/**
 * Deadlines: every wait in the client ends on the caller's AbortSignal, on a timeout, or when the
 * client closes, and the reason is always a typed LivyError (never a bare DOMException).
 */
import { backoffDelay as delay } from "../util/backoff.ts";
import { LivyAbortError, LivyTimeoutError } from "./errors.ts";

export interface WaitOptions {
  signal?: AbortSignal | undefined;
  /** Undefined or Infinity: no timeout of its own (the signal may still end it). */
  timeoutMs?: number | undefined;
}

/**
 * A scope that aborts when any parent signal aborts or its timeout passes. `signal.reason` is then a
 * LivyAbortError or LivyTimeoutError naming `what`. Call `dispose()` when done, so no timer outlives it.
 */
export class Deadline {
  readonly signal: AbortSignal;
  readonly #controller = new AbortController();
  readonly #cleanups: Array<() => void> = [];

  constructor(what: string, options: WaitOptions = {}, parents: ReadonlyArray<AbortSignal | undefined> = []) {
    this.signal = this.#controller.signal;
    for (const parent of [options.signal, ...parents]) {
      if (!parent) continue;
      const onAbort = () => this.#abort(toLivyAbort(what, parent.reason));
      if (parent.aborted) {
        onAbort();
        return;
      }
      parent.addEventListener("abort", onAbort, { once: true });
      this.#cleanups.push(() => parent.removeEventListener("abort", onAbort));
    }
    const ms = options.timeoutMs;
    if (ms !== undefined && Number.isFinite(ms)) {
      const timer = setTimeout(() => this.#abort(new LivyTimeoutError(what, ms)), Math.max(0, ms));
      this.#cleanups.push(() => clearTimeout(timer));
    }
  }

  /** Throws the typed reason if the deadline has passed. */
  throwIfDone(): void {
    if (this.signal.aborted) throw this.signal.reason;
  }

  dispose(): void {
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
  }

  #abort(reason: Error): void {
    if (this.signal.aborted) return;
    this.dispose();
    this.#controller.abort(reason);
  }
}

/** Keeps a reason that already is a Livy error (a parent deadline's), wraps anything else. */
function toLivyAbort(what: string, reason: unknown): Error {
  if (reason instanceof LivyTimeoutError || reason instanceof LivyAbortError) return reason;
  return new LivyAbortError(what, reason);
}

/** Resolves after `ms`, or rejects with the signal's (typed) reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Settles like `promise`, or rejects with the signal's reason when it aborts first. */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

export interface BackoffPolicy {
  /** First delay. */
  minDelayMs: number;
  /** Ceiling of the delay. */
  maxDelayMs: number;
  /** Growth per attempt. */
  factor: number;
}

/** Exponential delay with jitter in [50%, 100%], so many clients do not retry in lockstep. */
export function backoffDelay(
  policy: BackoffPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  return delay(
    { baseMs: policy.minDelayMs, maxMs: policy.maxDelayMs, factor: policy.factor, jitter: 0.5 },
    attempt,
    random,
  );
}
