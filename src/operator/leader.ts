import type { Logger } from "pino";
import { CORE, KubeApiError, type KubeClient, resourcePath } from "../kube/client.ts";
import { backoffDelay } from "../util/backoff.ts";

interface Lease {
  apiVersion: "coordination.k8s.io/v1";
  kind: "Lease";
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** A monotonic clock in ms (default performance.now): the only clock election decisions use. */
  now?: () => number;
}

function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/**
 * Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it:
 * - a lease is taken over only when it has not changed for its duration **as observed by this replica's
 *   own monotonic clock** (from when it last saw the record change), never by comparing the holder's
 *   renewTime with the local wall clock: a standby whose clock runs 20 s ahead would otherwise take a
 *   lease its leader keeps renewing;
 * - each renewal is bounded by the renew deadline (its requests abort when it passes), so a hanging API
 *   server cannot keep a leader believing it leads;
 * - leadership ends renewDeadline after the start of the last successful renewal, whatever the requests in
 *   flight do: `signal` aborts then, and every request of the operator's work carries it, so nothing in
 *   flight completes after this replica has stopped leading. renewDeadline < leaseDuration leaves a margin
 *   before any other replica may take over.
 * Writes carry the Lease's resourceVersion, so two candidates never both win the same term.
 */
export class LeaderElector {
  private readonly opts: Required<Omit<LeaderElectionOptions, "now">>;
  private readonly client: KubeClient;
  private readonly log: Logger;
  private readonly now: () => number;
  private leading = false;
  private stopped = false;
  /** When (monotonic) the last successful renewal started: the term runs renewDeadline from there. */
  private renewedAt = Number.NEGATIVE_INFINITY;
  /** The lease record as last seen, and when (monotonic) it was seen to change. */
  private observed: { record: string; at: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private term = new AbortController();
  private onLost: () => void = () => {};

  constructor(client: KubeClient, log: Logger, opts: LeaderElectionOptions) {
    this.client = client;
    this.log = log;
    this.now = opts.now ?? (() => performance.now());
    const { now: _, ...rest } = opts;
    this.opts = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...rest };
    if (this.opts.renewDeadlineMs >= this.opts.leaseDurationMs)
      throw new Error("leader election: the renew deadline must be shorter than the lease duration");
  }

  /** True while this replica may act: it leads and its term has not run out. */
  get isLeader(): boolean {
    return this.leading && this.now() < this.renewedAt + this.opts.renewDeadlineMs;
  }

  /** Aborted when leadership ends (or never began): every request made while leading carries it. */
  get signal(): AbortSignal {
    return this.term.signal;
  }

  /** Resolves once this replica leads; `onLost` is called (once) if it later stops leading. */
  run(onLost: () => void): Promise<void> {
    this.onLost = onLost;
    return new Promise((resolve) => {
      const tick = async () => {
        if (this.stopped) return;
        const started = this.now();
        let ok = false;
        try {
          ok = await this.tryAcquireOrRenew(started);
        } catch (err) {
          this.log.warn({ err: String(err) }, "leader election: lease update failed");
        }
        if (this.stopped) return;
        if (ok) {
          this.renewedAt = started;
          this.armDeadline();
          if (!this.leading) {
            this.leading = true;
            this.term = new AbortController();
            this.armDeadline();
            this.log.info(
              { lease: `${this.opts.namespace}/${this.opts.name}` },
              "leader election: became leader",
            );
            resolve();
          }
        } else if (this.leading && this.now() >= this.renewedAt + this.opts.renewDeadlineMs) {
          this.lose("renewals failed for the renew deadline");
          return;
        }
        // spread as client-go's JitterFactor 1.2 does, so that candidates do not ask in lockstep
        const next = backoffDelay(
          { baseMs: this.opts.retryPeriodMs * 1.2, maxMs: this.opts.retryPeriodMs * 1.2, jitter: 1 / 6 },
          0,
        );
        this.timer = setTimeout(tick, next);
      };
      void tick();
    });
  }

  /** Ends the term when it runs out, even while a renewal hangs. */
  private armDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    const left = this.renewedAt + this.opts.renewDeadlineMs - this.now();
    this.deadline = setTimeout(() => {
      if (this.leading && this.now() >= this.renewedAt + this.opts.renewDeadlineMs)
        this.lose("no renewal within the renew deadline");
    }, Math.max(0, left) + 1);
    this.deadline.unref();
  }

  private lose(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.deadline) clearTimeout(this.deadline);
    this.term.abort(new Error(`leadership lost: ${why}`));
    this.log.error({ why }, "leader election: lost the lease");
    this.onLost();
  }

  private path(name?: string): string {
    return resourcePath(CORE.leases, this.opts.namespace, name);
  }

  /** One try, bounded: while leading, by what is left of the term; else by the renew deadline. */
  private async tryAcquireOrRenew(started: number): Promise<boolean> {
    const budget = Math.floor(
      this.leading ? this.renewedAt + this.opts.renewDeadlineMs - started : this.opts.renewDeadlineMs,
    );
    if (budget <= 0) return false;
    const signal = AbortSignal.timeout(budget);
    const opts = { signal, timeoutMs: budget };
    const durationS = Math.ceil(this.opts.leaseDurationMs / 1000);
    const current = await this.client.getOrNull<Lease>(this.path(this.opts.name), opts);
    const wall = new Date();
    if (!current) {
      const lease: Lease = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: this.opts.name, namespace: this.opts.namespace },
        spec: {
          holderIdentity: this.opts.identity,
          leaseDurationSeconds: durationS,
          acquireTime: microTime(wall),
          renewTime: microTime(wall),
          leaseTransitions: 0,
        },
      };
      const created = await this.write(() => this.client.create<Lease>(this.path(), lease, undefined, opts));
      if (created) this.observe(created);
      return created !== null;
    }
    this.observe(current);
    const spec = current.spec;
    const holder = spec.holderIdentity ?? "";
    const mine = holder === this.opts.identity;
    if (holder && !mine) {
      // expired only if unchanged for its duration by this replica's own clock, from when it saw it change
      const durationMs = (spec.leaseDurationSeconds ?? durationS) * 1000;
      if (this.now() < (this.observed?.at ?? this.now()) + durationMs) return false;
    }
    const next: Lease = {
      ...current,
      spec: {
        ...spec,
        holderIdentity: this.opts.identity,
        leaseDurationSeconds: durationS,
        renewTime: microTime(wall),
        acquireTime: mine ? spec.acquireTime : microTime(wall),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    };
    const written = await this.write(() =>
      this.client.request<Lease>("PUT", this.path(this.opts.name), { body: next, ...opts }),
    );
    if (written) this.observe(written);
    return written !== null;
  }

  /** Notes the record, and when it last changed (by this replica's clock). */
  private observe(lease: Lease): void {
    const s = lease.spec;
    const record = JSON.stringify([
      s.holderIdentity,
      s.renewTime,
      s.acquireTime,
      s.leaseTransitions,
      s.leaseDurationSeconds,
    ]);
    if (this.observed?.record !== record) this.observed = { record, at: this.now() };
  }

  private async write(fn: () => Promise<Lease>): Promise<Lease | null> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof KubeApiError && (err.isConflict || err.reason === "AlreadyExists")) return null;
      throw err;
    }
  }

  /** Stops renewing and, when leading, releases the lease so a standby takes over at once. */
  async release(): Promise<void> {
    const wasLeading = this.isLeader;
    this.stopped = true;
    this.leading = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.deadline) clearTimeout(this.deadline);
    this.term.abort(new Error("leadership released"));
    if (!wasLeading) return;
    try {
      const opts = { timeoutMs: 5_000 };
      const current = await this.client.getOrNull<Lease>(this.path(this.opts.name), opts);
      if (current?.spec.holderIdentity === this.opts.identity) {
        await this.client.request("PUT", this.path(this.opts.name), {
          body: {
            ...current,
            spec: { ...current.spec, holderIdentity: null, renewTime: null, acquireTime: null },
          },
          ...opts,
        });
      }
    } catch (err) {
      this.log.warn({ err: String(err) }, "leader election: could not release the lease");
    }
  }
}
