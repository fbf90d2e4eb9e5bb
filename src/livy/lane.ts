/**
 * OrderedLane: one Livy session's statement submissions, sent in submission order without waiting for
 * each answer before sending the next.
 *
 * What Livy guarantees (read in Livy 0.9's source and checked against the real server, see
 * test/testbed/livy-observed.md): the REPL driver numbers a statement when the server's RPC for it arrives
 * (`Session.execute`, an AtomicInteger) and runs statements one at a time in that order (a single-thread
 * executor). The server handles each `POST /sessions/{id}/statements` on a Jetty request thread and makes
 * that RPC before answering; it takes no lock, so two POSTs on two connections race and can be numbered in
 * either order (a burst of 50 dependent statements sent on separate connections came out shuffled). Jetty
 * handles the requests of one HTTP/1.1 connection one after another, in the order they were sent, answering
 * each before reading the next. So POSTs pipelined on one connection are numbered in the order they were
 * written, and the client pays Livy's handling time per statement but not a round trip.
 *
 * The lane keeps a queue ordered by submission. It prepares each item (auth header; in resilient mode a wait
 * until the session is usable) strictly in order, dispatches it onto the connection, and lets up to `depth`
 * be in flight. Outcomes are handled in order too: an item Livy certainly did not create (the session was
 * still starting, the connection was refused) may be requeued, and then goes out again before anything
 * submitted after it that has not been dispatched yet. With `depth` 1 it is the old discipline: the next
 * POST leaves when the previous one was answered (used when the transport is not a plain connection to
 * Livy, e.g. a proxy that may spread requests over several upstream connections).
 */
import { LivyAbortError } from "./errors.ts";

export interface LaneRequest<P, T> {
  /** Awaited in lane order before dispatch; may run again when the item is requeued. */
  prepare: (attempt: number) => Promise<P> | P;
  /**
   * Hands the request to the connection synchronously: when it returns, the request is queued on the
   * socket behind everything dispatched before it.
   */
  send: (prepared: P) => Promise<T>;
  /** Decides, in lane order, whether a failure is sent again (only when Livy certainly did not act on it). */
  resend?: (err: unknown, attempt: number) => boolean;
  /** Checked before each dispatch: once aborted the item is dropped unsent, rejecting with its reason. */
  signal?: AbortSignal | undefined;
}

interface Item {
  readonly seq: number;
  readonly request: LaneRequest<unknown, unknown>;
  attempt: number;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class OrderedLane {
  /** Most requests dispatched and not yet answered. */
  readonly depth: number;
  #seq = 0;
  /** Not dispatched yet, ordered by seq (a requeued item goes back to its place). */
  readonly #queue: Item[] = [];
  #inFlight = 0;
  #pumping = false;
  /** Outcomes are handled one after another, in dispatch order. */
  #outcomes: Promise<void> = Promise.resolve();

  constructor(depth: number) {
    if (!Number.isInteger(depth) || depth < 1) throw new RangeError(`lane depth must be ≥ 1, got ${depth}`);
    this.depth = depth;
  }

  /** Submitted and not settled yet: queued, being prepared, or dispatched. */
  get pending(): number {
    return this.#queue.length + this.#inFlight;
  }

  submit<P, T>(request: LaneRequest<P, T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
        seq: this.#seq++,
        request: request as LaneRequest<unknown, unknown>,
        attempt: 0,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      void this.#pump();
    });
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && this.#inFlight < this.depth) {
        const item = this.#queue[0] as Item;
        if (this.#dropIfAborted(item)) continue;
        let prepared: unknown;
        try {
          prepared = await item.request.prepare(item.attempt);
        } catch (err) {
          this.#remove(item);
          item.reject(err);
          continue;
        }
        // While it was being prepared an earlier item may have been requeued (it goes first), or this one
        // dropped: look again.
        if (this.#queue[0] !== item || this.#dropIfAborted(item)) continue;
        this.#queue.shift();
        this.#inFlight++;
        let response: Promise<unknown>;
        try {
          response = item.request.send(prepared);
        } catch (err) {
          response = Promise.reject(err);
        }
        const settled = response.then(
          (value) => ({ ok: true as const, value }),
          (error: unknown) => ({ ok: false as const, error }),
        );
        this.#outcomes = this.#outcomes.then(async () => this.#handle(item, await settled));
      }
    } finally {
      this.#pumping = false;
    }
  }

  #handle(item: Item, outcome: { ok: true; value: unknown } | { ok: false; error: unknown }): void {
    this.#inFlight--;
    if (outcome.ok) item.resolve(outcome.value);
    else if (!item.request.signal?.aborted && item.request.resend?.(outcome.error, item.attempt)) {
      item.attempt++;
      const at = this.#queue.findIndex((q) => q.seq > item.seq);
      this.#queue.splice(at < 0 ? this.#queue.length : at, 0, item);
    } else item.reject(outcome.error);
    void this.#pump();
  }

  #dropIfAborted(item: Item): boolean {
    const signal = item.request.signal;
    if (!signal?.aborted) return false;
    this.#remove(item);
    item.reject(signal.reason ?? new LivyAbortError("statement submission"));
    return true;
  }

  #remove(item: Item): void {
    const at = this.#queue.indexOf(item);
    if (at >= 0) this.#queue.splice(at, 1);
  }
}
