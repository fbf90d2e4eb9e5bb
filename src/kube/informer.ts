import { backoffDelay } from "../util/backoff.ts";
import {
  KubeApiError,
  type KubeClient,
  type KubeList,
  type KubeObject,
  type Query,
  type WatchEvent,
} from "./client.ts";

export interface InformerHandlers<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
}

export interface InformerOptions {
  /** Collection path, e.g. /apis/apps/v1/deployments or /apis/apps/v1/namespaces/ns/deployments. */
  path: string;
  /** The namespace the path is limited to, if any. */
  namespace?: string;
  labelSelector?: string;
  /** A watch that delivers nothing (not even a bookmark) this long is taken as stalled and restarted. */
  stallTimeoutMs?: number;
  /**
   * Server-side timeout of each watch request, after which the watch resumes from the last resourceVersion.
   * Default: a random 240-360 s, spread like client-go's reflector so that watches do not all end at once.
   */
  watchTimeoutSeconds?: number;
  /** Called with a reason each time the list/watch is restarted after a failure or a stall. */
  onRestart?(reason: string): void;
  /** Called after each successful list, once its objects were handed to the handlers (healthy again). */
  onRelisted?(): void;
  onError?(err: unknown): void;
  /** Backoff between failed attempts. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * What of each object is kept (client-go's SetTransform): applied to every object before it is cached or
   * handed to a handler. The default drops metadata.managedFields only.
   */
  transform?: (obj: KubeObject) => KubeObject;
  /** A secondary index (client-go's Indexer): objects by the value this returns, undefined for none. */
  indexBy?: (obj: KubeObject) => string | undefined;
}

export function objectKey(obj: KubeObject): string {
  const m = obj.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name}` : (m.name ?? "");
}

/** Compares resourceVersions as etcd revisions; null when either is not a plain integer. */
export function compareResourceVersions(a?: string, b?: string): number | null {
  if (!a || !b || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return null;
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * What a reconciler reads and writes of a cache: an Informer, or several over namespaces seen as one
 * (controller.ts MultiCache). Typed apart so that a wrapper missing a method fails the typecheck.
 */
export type Cache<T extends KubeObject> = Pick<
  Informer<T>,
  "get" | "list" | "values" | "byIndex" | "setIfNewer" | "markDeleted" | "hasSynced"
>;

/**
 * A list-watch cache that never gives up: client-node's informer stops for good on any error but 410, so
 * this one restarts itself with backoff on every failure (reset, 403, 5xx, a watch that stalls silently),
 * relists on 410 Gone, and reports each restart. Handlers only see objects; they must only enqueue keys.
 */
export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  /** indexBy's value → keys of the objects with it. */
  private readonly index = new Map<string, Set<string>>();
  private readonly handlers: InformerHandlers<T>[] = [];
  private resourceVersion = "";
  private abort: AbortController | null = null;
  private stopped = false;
  private synced = false;
  /** The list succeeded and the watch since has not failed; false from a failure until the next list. */
  private connected = false;
  /** A watch request is open (the watchdog only judges an open watch). */
  private watching = false;
  private lastEventAt = Date.now();
  private watchdog: NodeJS.Timeout | null = null;
  private failures = 0;
  private loop: Promise<void> | null = null;
  private syncWaiters: Array<() => void> = [];
  /** Ends the backoff sleep early on stop(). */
  private wakeUp: (() => void) | null = null;
  private readonly opts: Required<
    Omit<
      InformerOptions,
      | "labelSelector"
      | "namespace"
      | "onRestart"
      | "onRelisted"
      | "onError"
      | "watchTimeoutSeconds"
      | "transform"
      | "indexBy"
    >
  > &
    InformerOptions;

  private readonly client: KubeClient;

  constructor(client: KubeClient, opts: InformerOptions) {
    this.client = client;
    this.opts = { stallTimeoutMs: 120_000, minBackoffMs: 200, maxBackoffMs: 30_000, ...opts };
  }

  addHandlers(h: InformerHandlers<T>): void {
    this.handlers.push(h);
  }

  get namespace(): string | undefined {
    return this.opts.namespace;
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  /**
   * True while the cache follows the API server: the last list succeeded and no watch has failed since.
   * False from the first failure (API server unreachable, watch broken, stalled, expired) until a list
   * succeeds again, so /readyz can say the operator is acting on a cache it cannot refresh.
   */
  get healthy(): boolean {
    return this.connected && !this.stopped;
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  /** A copy of the whole cache: O(N), for what needs all of it (never per reconcile pass). */
  list(): T[] {
    return [...this.cache.values()];
  }

  /** The cached objects, without copying them into an array. */
  values(): IterableIterator<T> {
    return this.cache.values();
  }

  /** The objects whose indexBy value is `value`, in O(their number). */
  byIndex(value: string): T[] {
    const keys = this.index.get(value);
    if (!keys) return [];
    const out: T[] = [];
    for (const k of keys) {
      const o = this.cache.get(k);
      if (o) out.push(o);
    }
    return out;
  }

  keys(): string[] {
    return [...this.cache.keys()];
  }

  get size(): number {
    return this.cache.size;
  }

  /**
   * Puts an object the caller just wrote (the API server's answer) into the cache, unless the cache already
   * holds a newer version: so the next pass does not act on a copy older than its own write.
   */
  setIfNewer(written: T): void {
    const obj = this.slim(written);
    const key = objectKey(obj);
    const cur = this.cache.get(key);
    const cmp = compareResourceVersions(obj.metadata?.resourceVersion, cur?.metadata?.resourceVersion);
    if (!cur || (cmp !== null && cmp > 0)) this.put(key, obj);
  }

  /**
   * After the caller deleted the object at `key`: the cached copy says it is being deleted (a
   * deletionTimestamp) until the watch's DELETED event removes it, so a pass that comes before that event
   * does not delete it again (an idle teardown is one DELETE; the status write it makes brings the next pass
   * at once).
   */
  markDeleted(key: string, at: string = new Date().toISOString()): void {
    const cur = this.cache.get(key);
    if (!cur || cur.metadata?.deletionTimestamp) return;
    this.put(key, { ...cur, metadata: { ...cur.metadata, deletionTimestamp: at } });
  }

  private slim(obj: T): T {
    return (this.opts.transform ? this.opts.transform(obj) : slim(obj)) as T;
  }

  private put(key: string, obj: T): void {
    const by = this.opts.indexBy;
    if (by) {
      const before = this.cache.get(key);
      const was = before ? by(before) : undefined;
      const now = by(obj);
      if (was !== now) {
        if (was !== undefined) this.unindex(was, key);
        if (now !== undefined) {
          let set = this.index.get(now);
          if (!set) {
            set = new Set();
            this.index.set(now, set);
          }
          set.add(key);
        }
      }
    }
    this.cache.set(key, obj);
  }

  private remove(key: string): void {
    const before = this.cache.get(key);
    const was = before && this.opts.indexBy ? this.opts.indexBy(before) : undefined;
    if (was !== undefined) this.unindex(was, key);
    this.cache.delete(key);
  }

  private unindex(value: string, key: string): void {
    const set = this.index.get(value);
    set?.delete(key);
    if (set?.size === 0) this.index.delete(value);
  }

  start(): void {
    if (this.loop) return;
    this.stopped = false;
    this.watchdog = setInterval(
      () => {
        // only an open watch can stall: a list in progress has its own timeout, and a watch already aborted
        // must not be counted again while the informer backs off or relists
        if (this.watching && this.abort && Date.now() - this.lastEventAt > this.opts.stallTimeoutMs) {
          this.watching = false;
          this.opts.onRestart?.("stalled");
          this.abort.abort(new Error("watch stalled"));
        }
      },
      Math.min(5_000, this.opts.stallTimeoutMs / 2),
    );
    this.watchdog.unref();
    this.loop = this.run();
  }

  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.syncWaiters.push(resolve);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.watchdog) clearInterval(this.watchdog);
    this.abort?.abort(new Error("informer stopped"));
    this.wakeUp?.();
    await this.loop;
    this.loop = null;
  }

  private async run(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      try {
        this.abort = new AbortController();
        if (needList) {
          await this.relist();
          needList = false;
        }
        await this.watchOnce();
        // a server-side timeout ends a healthy watch: resume from the last resourceVersion
        this.failures = 0;
      } catch (err) {
        if (this.stopped) break;
        this.connected = false;
        const gone = err instanceof KubeApiError && err.isGone;
        const stalled = err instanceof Error && err.message === "watch stalled";
        needList = true;
        if (gone) {
          this.opts.onRestart?.("expired");
          this.resourceVersion = "";
          continue;
        }
        if (!stalled) {
          this.opts.onRestart?.("error");
          this.opts.onError?.(err);
        }
        this.failures++;
        await this.backoff(
          backoffDelay(
            { baseMs: this.opts.minBackoffMs, maxMs: this.opts.maxBackoffMs, jitter: 0.5 },
            this.failures - 1,
          ),
        );
      }
    }
  }

  private backoff(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = null;
        resolve();
      };
      timer = setTimeout(done, ms);
      timer.unref();
      this.wakeUp = done;
    });
  }

  private async relist(): Promise<void> {
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let rv = "";
    do {
      const q: Query = { limit: 500, continue: cont, labelSelector: this.opts.labelSelector };
      const page = await this.client.get<KubeList<T>>(this.opts.path, {
        query: q,
        timeoutMs: 60_000,
        ...(this.abort ? { signal: this.abort.signal } : {}),
      });
      for (const item of page.items) {
        const o = this.slim(item);
        fresh.set(objectKey(o), o);
      }
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion;
    } while (cont);
    const old = new Map(this.cache);
    this.cache.clear();
    this.index.clear();
    for (const [k, v] of fresh) this.put(k, v);
    this.resourceVersion = rv;
    this.lastEventAt = Date.now();
    this.connected = true;
    for (const [k, v] of fresh) {
      const prev = old.get(k);
      if (!prev) this.emit("add", v);
      else if (prev.metadata?.resourceVersion !== v.metadata?.resourceVersion) this.emit("update", v, prev);
      else this.emit("update", v, prev); // a relist re-delivers every key, like a resync
    }
    for (const [k, v] of old) if (!fresh.has(k)) this.emit("delete", v);
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    this.opts.onRelisted?.();
  }

  private async watchOnce(): Promise<void> {
    const abort = this.abort ?? new AbortController();
    this.abort = abort;
    this.lastEventAt = Date.now();
    const signal = abort.signal;
    const query: Query = {
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: this.opts.watchTimeoutSeconds ?? 240 + Math.floor(Math.random() * 120),
      labelSelector: this.opts.labelSelector,
    };
    this.watching = true;
    try {
      await this.client.watch<T>(this.opts.path, query, (e) => this.onEvent(e), signal);
    } finally {
      this.watching = false;
    }
    if (signal.aborted && !this.stopped) throw signal.reason;
  }

  private onEvent(e: WatchEvent<T>): void {
    this.lastEventAt = Date.now();
    if (e.type === "ERROR") {
      const status = e.object as unknown as { code?: number; reason?: string; message?: string };
      throw new KubeApiError(status.code ?? 500, status.reason ?? "", status.message ?? "watch error");
    }
    const rv = e.object.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    if (e.type === "BOOKMARK") return;
    const obj = this.slim(e.object);
    const key = objectKey(obj);
    const prev = this.cache.get(key);
    if (e.type === "DELETED") {
      this.remove(key);
      this.emit("delete", obj);
      return;
    }
    // keep a newer copy the reconciler stored itself (setIfNewer) until the watch catches up
    const cmp = compareResourceVersions(rv, prev?.metadata?.resourceVersion);
    if (!(prev && cmp !== null && cmp < 0)) this.put(key, obj);
    if (prev) this.emit("update", obj, prev);
    else this.emit("add", obj);
  }

  private emit(kind: "add" | "update" | "delete", obj: T, prev?: T): void {
    for (const h of this.handlers) {
      try {
        if (kind === "add") h.onAdd?.(obj);
        else if (kind === "update") h.onUpdate?.(prev ?? obj, obj);
        else h.onDelete?.(obj);
      } catch (err) {
        this.opts.onError?.(err);
      }
    }
  }
}

/**
 * Drops metadata.managedFields before caching, as controller-runtime's default transform does: the server-side
 * apply bookkeeping is often the largest part of an object and nothing here reads it.
 */
export function slim<T extends KubeObject>(obj: T): T {
  const meta = obj.metadata as (KubeObject["metadata"] & { managedFields?: unknown }) | undefined;
  if (meta && "managedFields" in meta) delete meta.managedFields;
  return obj;
}
