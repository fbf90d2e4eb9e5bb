/**
 * A bounded cache with a time to live per entry, least recently used entries evicted first, and one
 * computation per key at a time (concurrent misses share it). Written by hand: it is a Map and twenty lines,
 * and the TTL-per-entry plus shared in-flight misses is what the decision caches need.
 */
export class DecisionCache<V> {
  readonly #max: number;
  readonly #entries = new Map<string, { value: V; expires: number }>();
  readonly #inflight = new Map<string, Promise<V>>();
  hits = 0;
  misses = 0;

  constructor(maxEntries: number) {
    this.#max = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string, now = Date.now()): V | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (e.expires <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    // re-insert: Map iteration order is insertion order, so the first key is the least recently used
    this.#entries.delete(key);
    this.#entries.set(key, e);
    return e.value;
  }

  set(key: string, value: V, ttlMs: number, now = Date.now()): void {
    this.#entries.delete(key);
    if (ttlMs <= 0) return;
    this.#entries.set(key, { value, expires: now + ttlMs });
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }

  /** The cached value, or `compute()`'s, cached for `ttl(value)` ms; concurrent calls share one compute. */
  async getOrCompute(key: string, compute: () => Promise<V>, ttl: (v: V) => number): Promise<V> {
    const cached = this.get(key);
    if (cached !== undefined) {
      this.hits++;
      return cached;
    }
    const running = this.#inflight.get(key);
    if (running) {
      this.hits++;
      return await running;
    }
    this.misses++;
    const p = compute().then(
      (v) => {
        this.set(key, v, ttl(v));
        return v;
      },
      (err: unknown) => {
        throw err;
      },
    );
    this.#inflight.set(key, p);
    try {
      return await p;
    } finally {
      this.#inflight.delete(key);
    }
  }
}
