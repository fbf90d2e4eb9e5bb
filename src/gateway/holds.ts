/**
 * Requests held while their LivySession starts: counted per session and in all (so the memory a wake
 * can take is bounded), and woken when the session's cached object changes.
 */
export class Holds {
  readonly #perSession: number;
  readonly #total: number;
  readonly #held = new Map<string, number>();
  readonly #waiters = new Map<string, Set<() => void>>();
  #count = 0;

  constructor(opts: { maxPerSession: number; maxTotal: number }) {
    this.#perSession = opts.maxPerSession;
    this.#total = opts.maxTotal;
  }

  get count(): number {
    return this.#count;
  }

  heldFor(key: string): number {
    return this.#held.get(key) ?? 0;
  }

  /** Takes a place in the session's queue, or false when it (or the whole gateway) is full. */
  tryEnter(key: string): boolean {
    const n = this.#held.get(key) ?? 0;
    if (n >= this.#perSession || this.#count >= this.#total) return false;
    this.#held.set(key, n + 1);
    this.#count++;
    return true;
  }

  leave(key: string): void {
    const n = (this.#held.get(key) ?? 0) - 1;
    if (n <= 0) this.#held.delete(key);
    else this.#held.set(key, n);
    this.#count--;
  }

  /** The session's cached object changed: every request waiting on it looks again. */
  notify(key: string): void {
    const ws = this.#waiters.get(key);
    if (!ws) return;
    this.#waiters.delete(key);
    for (const w of ws) w();
  }

  /** Every waiter looks again (shutdown). */
  notifyAll(): void {
    for (const key of [...this.#waiters.keys()]) this.notify(key);
  }

  /** Resolves on the next change of `key`, after `ms`, or when `signal` aborts, whichever comes first. */
  waitForChange(key: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let set = this.#waiters.get(key);
      if (!set) {
        set = new Set();
        this.#waiters.set(key, set);
      }
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        const s = this.#waiters.get(key);
        s?.delete(done);
        if (s?.size === 0) this.#waiters.delete(key);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal?.addEventListener("abort", done, { once: true });
      set.add(done);
    });
  }
}
