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
 * - three lanes, served in this order: "progress" (an owned object changed, a starting session's poll or a
 *   timer came due), "new" (a LivySession the operator has not seen yet, or every key of an initial list
 *   after a restart), "routine" (a Ready session's periodic poll). While a lane ahead holds keys, "new" still
 *   gets one pick in NEW_LANE_SHARE and "routine" one in ROUTINE_LANE_SHARE, so neither starves.
 *   - With one FIFO, 1000 LivySessions applied at once went Ready only after all 1000 first passes: a
 *     Deployment that became available queued behind every new key (Ready − available 195-432 s median at
 *     1000, bench/RESULTS.md 15.1). controller-runtime's priority queue makes the same choice for an initial
 *     list's adds.
 *   - With Ready sessions' polls in the progress lane and new keys taking one pick in four, 10,000 applied at
 *     once on 2 cores failed by the hundreds (StartupTimeout): 3435 Ready sessions polled every 5 s asked for
 *     687 passes a second of an operator doing 15 (each waiting on a loaded API server), and a start needs
 *     more passes than the three in four left to progress, so the progress lane grew until a starting
 *     session's next look came after its 10 min (bench/RESULTS.md 20.1). Now a poll of a Ready session
 *     yields to both other lanes, and new keys get one pick in 16 while progress waits (every pick when
 *     none does). This does not bound the starts in progress: starts waiting on Kubernetes need no passes,
 *     so a slow cluster still lets new ones in (bench/RESULTS.md 20.2; a cap is not built).
 *   - A key queued as "routine" moves to the progress lane when something about it changes (its pod died, a
 *     user asked for it): only the poll waits.
 *   Hand-written because the semantics above (dirty/processing collapse, per-key backoff beside a shared
 *   bucket) are client-go's, which no npm package implements; the lanes are a small addition to them.
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

/** Which lane a key joins: "new" for a first look at an object, "routine" for a Ready session's poll. */
export type Lane = "new" | "progress" | "routine";

/** While a lane ahead holds keys, one pick in this many goes to the "new" lane: creations never starve. */
export const NEW_LANE_SHARE = 16;
/** While a lane ahead holds keys, one pick in this many goes to the "routine" lane: polls never starve. */
export const ROUTINE_LANE_SHARE = 16;

export interface RateLimitOptions {
  /** Retries per second, over all keys. */
  qps: number;
  burst: number;
}

/** A key's scheduled add (addAfter). */
interface PendingAdd {
  at: number;
  lane: Lane;
  timer: NodeJS.Timeout | undefined;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly newLane: string[] = [];
  /** Insertion-ordered, so that a key can leave it at once for the progress lane. */
  private readonly routineLane = new Set<string>();
  /** Picks since the last pick from the new lane, and from the routine lane. */
  private sinceNew = 0;
  private sinceRoutine = 0;
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly addedAt = new Map<string, number>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, PendingAdd>();
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
    return this.queue.length + this.newLane.length + this.routineLane.size;
  }

  /**
   * Queues `key` unless it is queued already (its place and lane stay, but a routine key added to another
   * lane moves to the progress lane's end). A key added while a worker has it runs once more after that
   * pass, in the progress lane.
   */
  add(key: string, lane: Lane = "progress"): void {
    if (this.shuttingDown) return;
    if (this.dirty.has(key)) {
      if (lane !== "routine" && this.routineLane.delete(key)) this.queue.push(key);
      return;
    }
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
    if (lane === "routine") this.routineLane.add(key);
    else (lane === "new" ? this.newLane : this.queue).push(key);
    this.hooks.onDepth?.(this.length);
  }

  /**
   * Schedules `key` after `ms` into `lane`; an earlier pending schedule wins, a later one replaces nothing
   * (but makes the pending one join the progress lane unless both are routine).
   */
  addAfter(key: string, ms: number, lane: Lane = "progress"): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key, lane);
      return;
    }
    const at = Date.now() + ms;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) {
      if (lane !== "routine") existing.lane = "progress";
      return;
    }
    if (existing) clearTimeout(existing.timer);
    // replacing a pending progress schedule by an earlier routine one keeps the progress lane
    const entry: PendingAdd = {
      at,
      lane: lane === "routine" && existing && existing.lane !== "routine" ? "progress" : lane,
      timer: undefined,
    };
    entry.timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key, entry.lane);
    }, ms);
    entry.timer.unref();
    this.timers.set(key, entry);
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

  /**
   * Progress, then new, then routine; but a lane owed its share (one pick in NEW_LANE_SHARE or
   * ROUTINE_LANE_SHARE since its last) goes first.
   */
  private next(): string | undefined {
    const progress = this.queue.length > 0;
    const fresh = this.newLane.length > 0;
    const routine = this.routineLane.size > 0;
    let lane: Lane;
    if (fresh && (!progress || this.sinceNew >= NEW_LANE_SHARE - 1)) lane = "new";
    else if (routine && ((!progress && !fresh) || this.sinceRoutine >= ROUTINE_LANE_SHARE - 1))
      lane = "routine";
    else if (progress) lane = "progress";
    else return undefined;
    this.sinceNew = lane === "new" ? 0 : this.sinceNew + 1;
    this.sinceRoutine = lane === "routine" ? 0 : this.sinceRoutine + 1;
    if (lane === "new") return this.newLane.shift();
    if (lane === "progress") return this.queue.shift();
    const key = this.routineLane.values().next().value;
    if (key !== undefined) this.routineLane.delete(key);
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
