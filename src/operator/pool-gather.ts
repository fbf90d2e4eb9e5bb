/**
 * What the warm pool's decisions observe, read from the caches (no requests): the pool a LivySession
 * matches and that pool's servers (docs/warm-pool.md). Used by the LivySession's pass (gather.ts) and by
 * the pool's own (pool-reconciler.ts).
 */
import type { LivySession, LivySessionPool } from "../api/index.ts";
import type { KubeObject } from "../kube/client.ts";
import { type Caches, ownedCache } from "./gather.ts";
import { CREDENTIAL_HASH_ANNOTATION, serverName } from "./objects.ts";
import { OWNED_KINDS, type PoolMember, type PoolObservation } from "./plan.ts";
import { isFree, POOL_LABEL, pooledBy, pooledServerOf, templateKey } from "./pool.ts";
import { isKubernetesMode } from "./spark.ts";

/** The sessions cache's index: a pooled LivySession (pool.ts pooledBy) under `namespace/pool`. */
export function poolIndexOf(o: KubeObject): string | undefined {
  const pool = pooledBy(o);
  return pool && o.metadata?.namespace ? `${o.metadata.namespace}/${pool}` : undefined;
}

/**
 * The Deployments cache's index: a server a pool handed over, under `namespace/pool`. Its label is set only
 * by the claim (execute.ts), which also makes the taker its owner, so the label alone names the pool here.
 */
export function handedOverIndexOf(o: KubeObject): string | undefined {
  const pool = o.metadata?.labels?.[POOL_LABEL];
  return pool && o.metadata?.namespace ? `${o.metadata.namespace}/${pool}` : undefined;
}

/** A pool's servers, as its pooled LivySessions and their Deployments show them. */
export function observePool(pool: LivySessionPool, c: Caches): PoolObservation {
  const ns = pool.metadata.namespace ?? "";
  const out: PoolObservation = { name: pool.metadata.name, servers: [], members: {} };
  for (const m of c.sessions.byIndex(`${ns}/${pool.metadata.name}`)) {
    const key = `${ns}/${serverName(m.metadata.name)}`;
    const deployment = c.deployments.get(key);
    out.servers.push(pooledServerOf(m, deployment));
    const owned = OWNED_KINDS.filter((kind) => ownedCache(c, kind)?.get(key));
    const member: PoolMember = {
      uid: m.metadata.uid ?? "",
      status: m.status ?? {},
      deploymentVersion: deployment?.metadata?.resourceVersion,
      owned,
      credential: Boolean(deployment?.metadata?.annotations?.[CREDENTIAL_HASH_ANNOTATION]),
    };
    out.members[m.metadata.name] = member;
  }
  return out;
}

/**
 * The pool that serves a LivySession: one in its namespace whose template key equals the LivySession's
 * (pool.ts templateKey), not being deleted; among several, the first by name with a warm free server (or
 * one already claimed by it). A pooled LivySession is served by none, nor is one in Spark's kubernetes
 * mode (a pooled server runs its driver in the Livy pod).
 */
export function observePoolFor(obj: LivySession, c: Caches): PoolObservation | undefined {
  if (!c.pools || pooledBy(obj) !== undefined) return undefined;
  if (isKubernetesMode(obj.spec.spark)) return undefined;
  const ns = obj.metadata.namespace;
  const uid = obj.metadata.uid;
  let key: string | undefined;
  const matching: LivySessionPool[] = [];
  for (const pool of c.pools.values()) {
    if (pool.metadata.namespace !== ns || pool.metadata.deletionTimestamp) continue;
    key ??= templateKey(obj.spec);
    if (templateKey(pool.spec) === key) matching.push(pool);
  }
  matching.sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  for (const pool of matching) {
    const seen = observePool(pool, c);
    if (seen.servers.some((s) => (isFree(s) && s.state === "warm") || (uid && s.claimedBy === uid)))
      return seen;
  }
  return undefined;
}
