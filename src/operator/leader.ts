import type { Logger } from "pino";
import { CORE, KubeApiError, type KubeClient, resourcePath } from "../kube/client.ts";

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
}

function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/**
 * Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does: acquire when free or
 * expired, renew every retry period, and give up leadership when renewals fail for the renew deadline (the
 * caller then stops reconciling, so two replicas never act at once). Writes use the Lease's resourceVersion,
 * so two candidates can never both win the same term.
 */
export class LeaderElector {
  private readonly opts: Required<LeaderElectionOptions>;
  private readonly client: KubeClient;
  private readonly log: Logger;
  private leading = false;
  private stopped = false;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(client: KubeClient, log: Logger, opts: LeaderElectionOptions) {
    this.client = client;
    this.log = log;
    this.opts = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...opts };
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Resolves once this replica leads; `onLost` is called if it later loses the lease. */
  run(onLost: () => void): Promise<void> {
    return new Promise((resolve) => {
      const tick = async () => {
        if (this.stopped) return;
        let ok = false;
        try {
          ok = await this.tryAcquireOrRenew();
        } catch (err) {
          this.log.warn({ err: String(err) }, "leader election: lease update failed");
        }
        if (ok) {
          this.lastRenew = Date.now();
          if (!this.leading) {
            this.leading = true;
            this.log.info(
              { lease: `${this.opts.namespace}/${this.opts.name}` },
              "leader election: became leader",
            );
            resolve();
          }
        } else if (this.leading && Date.now() - this.lastRenew > this.opts.renewDeadlineMs) {
          this.leading = false;
          this.log.error("leader election: lost the lease");
          onLost();
          return;
        }
        this.timer = setTimeout(tick, this.opts.retryPeriodMs);
      };
      void tick();
    });
  }

  private path(name?: string): string {
    return resourcePath(CORE.leases, this.opts.namespace, name);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const durationS = Math.ceil(this.opts.leaseDurationMs / 1000);
    const current = await this.client.getOrNull<Lease>(this.path(this.opts.name));
    if (!current) {
      const lease: Lease = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: this.opts.name, namespace: this.opts.namespace },
        spec: {
          holderIdentity: this.opts.identity,
          leaseDurationSeconds: durationS,
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: 0,
        },
      };
      return await this.write(() => this.client.create(this.path(), lease));
    }
    const spec = current.spec;
    const holder = spec.holderIdentity ?? "";
    const renewed = spec.renewTime ? Date.parse(spec.renewTime) : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? durationS) * 1000 < now.getTime();
    if (holder && holder !== this.opts.identity && !expired) return false;
    const mine = holder === this.opts.identity;
    const next: Lease = {
      ...current,
      spec: {
        ...spec,
        holderIdentity: this.opts.identity,
        leaseDurationSeconds: durationS,
        renewTime: microTime(now),
        acquireTime: mine ? spec.acquireTime : microTime(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    };
    return await this.write(() => this.client.request("PUT", this.path(this.opts.name), { body: next }));
  }

  private async write(fn: () => Promise<unknown>): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && (err.isConflict || err.status === 409)) return false;
      if (err instanceof KubeApiError && err.reason === "AlreadyExists") return false;
      throw err;
    }
  }

  /** Stops renewing and, when leading, releases the lease so a standby takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const current = await this.client.getOrNull<Lease>(this.path(this.opts.name));
      if (current?.spec.holderIdentity === this.opts.identity) {
        await this.client.request("PUT", this.path(this.opts.name), {
          body: {
            ...current,
            spec: { ...current.spec, holderIdentity: null, renewTime: null, acquireTime: null },
          },
        });
      }
    } catch (err) {
      this.log.warn({ err: String(err) }, "leader election: could not release the lease");
    }
  }
}
