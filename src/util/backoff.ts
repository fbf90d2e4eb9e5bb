/**
 * Exponential backoff, once for the whole package: the work queue's per-key retries, the informers' relists,
 * failurePolicy Recover's restarts, the finalizer's retries and the client's retries and polls all use it.
 */
import { createHash } from "node:crypto";

export interface Backoff {
  /** The delay of attempt 0. */
  baseMs: number;
  /** The ceiling of the delay (before jitter). */
  maxMs: number;
  /** Growth per attempt; default 2. */
  factor?: number;
  /**
   * The fraction of the delay that is random, 0..1 (default 0): the delay is drawn from
   * [(1 - jitter) × d, d], so that many keys failing together do not all retry together.
   */
  jitter?: number;
}

/** The delay before retry number `attempt` (0-based): min(max, base × factor^attempt), less its jitter. */
export function backoffDelay(policy: Backoff, attempt: number, random: () => number = Math.random): number {
  const factor = policy.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, policy.jitter ?? 0));
  // the exponent is capped so that a long run of failures cannot overflow to Infinity
  const raw = policy.baseMs * factor ** Math.min(Math.max(0, attempt), 64);
  const d = Math.min(policy.maxMs, Number.isFinite(raw) ? raw : policy.maxMs);
  return Math.round(d * (1 - jitter + jitter * random()));
}

/**
 * A number in [0, 1) that depends only on `seed`: jitter for decisions that must be pure functions of what
 * was observed (the same LivySession and attempt always get the same delay; different ones spread out).
 */
export function seededRandom(seed: string): number {
  return createHash("sha256").update(seed).digest().readUInt32BE(0) / 2 ** 32;
}
