/**
 * Statement POSTs to one session go to Livy in the order the gateway received them. Livy runs a session's
 * statements in the order it creates them; requests handled concurrently (authentication answered from the
 * cache for one and by the API server for another, held requests released together when a session becomes
 * Ready, several upstream connections) would otherwise reach it in any order. Each request takes a ticket
 * when it arrives and sends when every earlier ticket of its session is done.
 */
export class Lanes {
  readonly #lanes = new Map<
    string,
    { next: number; done: Set<number>; head: number; waiters: Map<number, () => void> }
  >();

  /** A place in the session's lane, taken when the request arrives. */
  take(key: string): Ticket {
    let lane = this.#lanes.get(key);
    if (!lane) {
      lane = { next: 0, done: new Set(), head: 0, waiters: new Map() };
      this.#lanes.set(key, lane);
    }
    const n = lane.next++;
    const l = lane;
    let released = false;
    return {
      turn: () =>
        new Promise<void>((resolve) => {
          if (l.head === n) resolve();
          else l.waiters.set(n, resolve);
        }),
      release: () => {
        if (released) return;
        released = true;
        l.done.add(n);
        while (l.done.has(l.head)) {
          l.done.delete(l.head);
          l.head++;
        }
        l.waiters.get(l.head)?.();
        l.waiters.delete(l.head);
        if (l.head === l.next) this.#lanes.delete(key);
      },
    };
  }

  get size(): number {
    return this.#lanes.size;
  }
}

export interface Ticket {
  /** Resolves when every earlier ticket of the session was released. */
  turn(): Promise<void>;
  /** Done (sent and answered, or given up): the next one may go. Idempotent. */
  release(): void;
}
