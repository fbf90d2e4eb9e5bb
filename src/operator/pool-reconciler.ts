/**
 * One pass over one LivySessionPool (docs/warm-pool.md): observe its pooled LivySessions (pool-gather.ts),
 * decide (pool.ts, pure), carry it out: create and delete pooled LivySessions, write the pool's status and
 * its metrics. The pooled LivySessions start their servers through the LivySession reconciler like any
 * other; LivySessions take them over in their own passes (decide.ts fromPool).
 */
import type { Logger } from "pino";
import {
  API_VERSION,
  GROUP,
  KIND,
  type LivySessionPool,
  type LivySessionPoolStatus,
  POOL_KIND,
  POOL_PLURAL,
  VERSION,
} from "../api/index.ts";
import { KubeApiError, type KubeClient, type ResourceType, resourcePath } from "../kube/client.ts";
import type { OperatorConfig } from "./config.ts";
import { withServerDefaults } from "./defaults.ts";
import { LIVYSESSIONS } from "./execute.ts";
import type { Caches } from "./gather.ts";
import type { Metrics } from "./metrics.ts";
import { FIELD_MANAGER } from "./objects.ts";
import { type Amounts, amountsOf, decidePool, POOL_LABEL, pooledSessionSpec } from "./pool.ts";
import { observePool } from "./pool-gather.ts";

export const LIVYSESSIONPOOLS: ResourceType = {
  group: GROUP,
  version: VERSION,
  plural: POOL_PLURAL,
  namespaced: true,
};

export interface PoolReconcilerDeps {
  kube: KubeClient;
  caches: Caches;
  config: OperatorConfig;
  metrics: Metrics;
}

/** What one pooled server requests: its container's requests, the operator's defaults applied (objects.ts). */
export function perServerRequests(
  config: OperatorConfig,
  server: LivySessionPool["spec"]["server"],
): Amounts {
  const s = withServerDefaults(config.defaultServer, server);
  return amountsOf((s?.resources ?? config.defaultResources)?.requests);
}

export class PoolReconciler {
  private readonly d: PoolReconcilerDeps;
  /** Resources each pool's budget gauges were set for (removed with the pool). */
  private readonly gauges = new Map<string, string[]>();

  constructor(deps: PoolReconcilerDeps) {
    this.d = deps;
  }

  async reconcile(key: string, log: Logger, signal?: AbortSignal): Promise<{ requeueAfterMs?: number }> {
    const pools = this.d.caches.pools;
    const pool = pools?.get(key);
    const [ns = "", name = ""] = key.split("/");
    if (!pool) {
      this.forget(ns, name);
      return {};
    }
    const spec = pool.spec;
    const seen = observePool(pool, this.d.caches);
    const handedOver = this.d.caches.deployments
      .byIndex(key)
      .filter((d) => !d.metadata?.deletionTimestamp).length;
    const budget = spec.budget?.requests ? amountsOf(spec.budget.requests) : undefined;
    const perServer = perServerRequests(this.d.config, spec.server);
    const deleting = Boolean(pool.metadata.deletionTimestamp);
    const decision = decidePool(
      { name, input: { size: spec.size ?? 1, budget, perServer, deleting } },
      seen.servers,
      handedOver,
      Date.now(),
    );
    const { plan } = decision;
    const opts = signal ? { signal } : {};
    for (const id of decision.remove) {
      signal?.throwIfAborted();
      log.info({ server: id }, "removing a pooled server");
      await this.d.kube.delete(resourcePath(LIVYSESSIONS, ns, id), opts);
    }
    if (!deleting) {
      for (const id of decision.create) {
        signal?.throwIfAborted();
        const created = await this.d.kube.apply<never>(
          resourcePath(LIVYSESSIONS, ns, id),
          {
            apiVersion: API_VERSION,
            kind: KIND,
            metadata: {
              name: id,
              namespace: ns,
              labels: { [POOL_LABEL]: name },
              ownerReferences: [
                {
                  apiVersion: API_VERSION,
                  kind: POOL_KIND,
                  name,
                  uid: pool.metadata.uid,
                  controller: true,
                  blockOwnerDeletion: true,
                },
              ],
            },
            spec: pooledSessionSpec(spec),
          },
          FIELD_MANAGER,
          opts,
        );
        this.d.caches.sessions.setIfNewer(created);
        log.info({ server: id }, "starting a pooled server");
      }
    }
    const status: LivySessionPoolStatus = {
      observedGeneration: pool.metadata.generation ?? 0,
      free: plan.free,
      warm: plan.warm,
      target: plan.target,
      budgetLimited: plan.budgetLimited,
      handedOver,
    };
    this.metrics(ns, name, plan.warm, plan.starting, handedOver, plan.target, budget ?? {}, plan.used);
    if (!deleting && JSON.stringify(status) !== JSON.stringify(pool.status ?? {})) {
      try {
        const updated = await this.d.kube.mergePatch<LivySessionPool>(
          resourcePath(LIVYSESSIONPOOLS, ns, name, "status"),
          { metadata: { resourceVersion: pool.metadata.resourceVersion }, status },
          undefined,
          opts,
        );
        pools?.setIfNewer(updated);
      } catch (err) {
        if (!(err instanceof KubeApiError && err.isNotFound)) throw err;
      }
    }
    return {};
  }

  private metrics(
    ns: string,
    pool: string,
    warm: number,
    starting: number,
    handedOver: number,
    target: number,
    budget: Amounts,
    used: Amounts,
  ): void {
    const m = this.d.metrics;
    m.poolServers.set({ namespace: ns, pool, state: "warm" }, warm);
    m.poolServers.set({ namespace: ns, pool, state: "starting" }, starting);
    m.poolServers.set({ namespace: ns, pool, state: "handed_over" }, handedOver);
    m.poolTarget.set({ namespace: ns, pool }, target);
    const resources = [...new Set([...Object.keys(budget), ...Object.keys(used)])];
    for (const r of this.gauges.get(`${ns}/${pool}`) ?? [])
      if (!resources.includes(r)) {
        m.poolBudget.remove({ namespace: ns, pool, resource: r });
        m.poolBudgetUsed.remove({ namespace: ns, pool, resource: r });
      }
    for (const r of resources) {
      if (budget[r] !== undefined) m.poolBudget.set({ namespace: ns, pool, resource: r }, budget[r]);
      else m.poolBudget.remove({ namespace: ns, pool, resource: r });
      m.poolBudgetUsed.set({ namespace: ns, pool, resource: r }, used[r] ?? 0);
    }
    this.gauges.set(`${ns}/${pool}`, resources);
  }

  /** A pool deleted: its series go (its free servers go by garbage collection: the pool owns them). */
  forget(ns: string, pool: string): void {
    const m = this.d.metrics;
    for (const state of ["warm", "starting", "handed_over"])
      m.poolServers.remove({ namespace: ns, pool, state });
    m.poolTarget.remove({ namespace: ns, pool });
    for (const r of this.gauges.get(`${ns}/${pool}`) ?? []) {
      m.poolBudget.remove({ namespace: ns, pool, resource: r });
      m.poolBudgetUsed.remove({ namespace: ns, pool, resource: r });
    }
    this.gauges.delete(`${ns}/${pool}`);
  }
}
