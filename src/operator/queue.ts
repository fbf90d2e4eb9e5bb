import { backoffDelay } from "../util/backoff.ts";

/**
 * A work queue keyed by namespace/name with the semantics of client-go's workqueue:
 * - a key is never processed by two workers at once;
 * - adds while a key is queued collapse into one entry, adds while it is processed make it run once more
 *   after the current pass (the dirty and processing sets);
 * - failures requeue with per-key exponential backoff, jittered, reset by `forget` after a success, and
 *   no faster than a token bucket over all keys allows (client-go's default controller rate limiter: the
 *   slower of the two), so that after an outage the keys come back spread out, not in waves;
 * - `addAfter` schedules a key (timers such as the idle deadline), keeping only the earliest pending time;
 * - two lanes: a key added with `lane: "new"` (a LivySession the operator has not seen yet, or every key of
 *   an initial list after a restart) waits behind keys whose objects progressed (an owned Deployment became
 *   available, a timer or poll came due), but gets at least one pick in NEW_LANE_SHARE. With one FIFO, 1000
 *   LivySessions applied at once went Ready only after all 1000 first passes: a Deployment that became
 *   available queued behind every new key (Ready − available 195-432 s median at 1000, bench/RESULTS.md
 *   15.1). controller-runtime's priority queue makes the same choice for an initial list's adds. Hand-written
 *   because the semantics above (dirty/processing collapse, per-key backoff beside a shared bucket) are
 *   client-go's, which no npm package implements; this is a small addition to them.
 */
export interface QueueHooks {
  onDepth?(depth: number): void;
  onAdd?(): void;
  onRetry?(): void;
  /** Seconds the key waited in the queue before a worker took it. */
  onQueueLatency?(seconds: number): void;
}

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** Fraction of each delay drawn at random (default 0.5). */
  jitter: number;
}

/** Which lane a key joins: "new" for a first look at an object, "progress" for everything else. */
export type Lane = "new" | "progress";

/** When both lanes hold keys, one pick in this many goes to the "new" lane: creations never starve. */
export const NEW_LANE_SHARE = 4;

export interface RateLimitOptions {
  /** Retries per second, over all keys. */
  qps: number;
  burst: number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly newLane: string[] = [];
  /** Picks from the progress lane since the last pick from the new lane. */
  private progressRun = 0;
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly addedAt = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private shuttingDown = false;
  private readonly hooks: QueueHooks;
  private readonly backoff: BackoffOptions;
  private readonly bucket: TokenBucket;
  private readonly random: () => number;

  constructor(
    opts: {
      hooks?: QueueHooks;
      backoff?: Partial<BackoffOptions>;
      rateLimit?: RateLimitOptions;
      random?: () => number;
      now?: () => number;
    } = {},
  ) {
    this.hooks = opts.hooks ?? {};
    this.backoff = {
      baseMs: opts.backoff?.baseMs ?? 50,
      maxMs: opts.backoff?.maxMs ?? 300_000,
      jitter: opts.backoff?.jitter ?? 0.5,
    };
    this.bucket = new TokenBucket(opts.rateLimit ?? { qps: 10, burst: 100 }, opts.now ?? Date.now);
    this.random = opts.random ?? Math.random;
  }

  get length(): number {
    return this.queue.length + this.newLane.length;
  }

  /**
   * Queues `key` unless it is queued already (its place and lane stay). A key added while a worker has it
   * runs once more after that pass, in the progress lane.
   */
  add(key: string, lane: Lane = "progress"): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.hooks.onAdd?.();
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.addedAt.set(key, performance.now());
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      this.reportLatency(key);
      waiter(key);
      return;
    }
    (lane === "new" ? this.newLane : this.queue).push(key);
    this.hooks.onDepth?.(this.length);
  }

  /** Schedules `key` after `ms`; an earlier pending schedule wins, a later one replaces nothing. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + ms;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Requeues after a failure: the later of its key's backoff and the queue's rate limit; returns the delay. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    this.hooks.onRetry?.();
    const delay = Math.max(backoffDelay(this.backoff, n, this.random), this.bucket.reserve());
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the failure count of `key` (after a successful pass). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /**
   * Clears every key's failure count: the API server is back after an outage. Every key failed while it
   * was away, and each failure doubled that key's backoff; kept, one more failure right after the
   * recovery (a conflict, a 503 while the API server finishes starting) put the key out of reach for
   * 25-100 s after everything was healthy again (a fresh-clone CI's outage test saw two LivySessions
   * still Starting 60 s after /readyz). Keys already waiting keep their timers; the relist re-adds them.
   */
  forgetAll(): void {
    this.failures.clear();
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Cancels a pending timer (the object is gone). */
  cancelTimer(key: string): void {
    const t = this.timers.get(key);
    if (t) clearTimeout(t.timer);
    this.timers.delete(key);
  }

  /** Next key to process, or undefined when the queue shuts down. */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.next();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      this.reportLatency(key);
      this.hooks.onDepth?.(this.length);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks `key` processed; if it was added meanwhile it goes back into the queue. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  isProcessing(key: string): boolean {
    return this.processing.has(key);
  }

  shutdown(): void {
    this.shuttingDown = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }

  /** The progress lane first, but the new lane at least once in NEW_LANE_SHARE picks while both wait. */
  private next(): string | undefined {
    const takeNew =
      this.newLane.length > 0 && (this.queue.length === 0 || this.progressRun >= NEW_LANE_SHARE - 1);
    if (takeNew) {
      this.progressRun = 0;
      return this.newLane.shift();
    }
    const key = this.queue.shift();
    if (key !== undefined) this.progressRun++;
    return key;
  }

  private reportLatency(key: string): void {
    const t = this.addedAt.get(key);
    this.addedAt.delete(key);
    if (t !== undefined) this.hooks.onQueueLatency?.((performance.now() - t) / 1000);
  }
}

/** A token bucket that lends: reserve() takes a token and says how long to wait for it (golang's rate.Limiter). */
class TokenBucket {
  private tokens: number;
  private at: number;
  private readonly opts: RateLimitOptions;
  private readonly now: () => number;

  constructor(opts: RateLimitOptions, now: () => number) {
    this.opts = opts;
    this.now = now;
    this.tokens = opts.burst;
    this.at = now();
  }

  reserve(): number {
    const t = this.now();
    this.tokens = Math.min(this.opts.burst, this.tokens + ((t - this.at) / 1000) * this.opts.qps);
    this.at = t;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.opts.qps) * 1000);
  }
}
