/**
 * The warm pool's decisions (issue 14, item 5), pure as decide.ts is: which pooled server a LivySession
 * takes, how many servers a pool starts or removes, and what its budget allows. No I/O, no clock, no
 * randomness: the caller observes the pooled servers (their Deployments, as the caches hold them) and
 * carries the result out. Unit-tested directly (test/unit/operator-pool.test.ts).
 *
 * A pooled server is a Livy server (Deployment, Service, ConfigMap `livy-<id>`, labelled
 * `livy.dev/pool=<pool>`) owned by its LivySessionPool, with an open Livy session that ran its warm-up.
 * Handing it to a LivySession moves its ownership: one compare-and-swap on the Deployment (its
 * resourceVersion) sets `livy.dev/claimed-by=<LivySession uid>` and the LivySession as controller, so of two
 * LivySessions (or two operator replicas) taking the same server one wins and the other gets 409 and picks
 * again; an operator killed after the swap finds the server by that label and finishes the hand-over.
 */
import { STARTUP_TIMEOUT_MAX } from "../api/livysession.ts";
import { POOL_KIND, POOL_NAME_MAX } from "../api/livysessionpool.ts";
import { hashOf } from "./objects.ts";

/** On every object of a pooled server: the name of its LivySessionPool. */
export const POOL_LABEL = "livy.dev/pool";
/** On a pooled server's Deployment once handed over: the uid of the LivySession that took it. */
export const CLAIMED_BY_LABEL = "livy.dev/claimed-by";
/** On a pooled server's Deployment once its Livy session ran the warm-up: that session's id. */
export const WARM_SESSION_ANNOTATION = "livy.dev/warm-session";

/** What a LivySession and a pool must agree on for the pool's servers to serve it. */
export interface TemplateLike {
  kind: string;
  server?: unknown;
  session?: unknown;
  warmup?: { enabled?: boolean | undefined; code?: string | undefined } | undefined;
  auth?: unknown;
}

/**
 * The key of a template: equal for a LivySession and a pool exactly when a server started for the pool is
 * the server the LivySession would have started (same kind, server, Livy session body, warm-up and auth).
 * Unset and empty are the same (`server: {}` builds what no `server` builds).
 */
export function templateKey(t: TemplateLike): string {
  const warm = t.warmup?.enabled === false ? { enabled: false } : { code: t.warmup?.code ?? null };
  return hashOf({
    kind: t.kind,
    server: emptyToNull(t.server),
    session: emptyToNull(t.session),
    warmup: warm,
    auth: emptyToNull(t.auth),
  });
}

function emptyToNull(v: unknown): unknown {
  if (v === undefined || v === null) return null;
  if (typeof v === "object" && !Array.isArray(v) && Object.keys(v as object).length === 0) return null;
  return v;
}

/** A pooled server as the operator observes it. */
export interface PooledServer {
  /** Its id: the objects are livy-<id>, its pods labelled livy.dev/session=<id>. */
  id: string;
  /** metadata.creationTimestamp, epoch ms. */
  createdMs: number;
  /** Being deleted. */
  deleting: boolean;
  /** The LivySession uid it was handed to, if any. */
  claimedBy?: string | undefined;
  /**
   * starting: its Deployment or Livy session not ready, or the warm-up not run yet; warm: its Livy
   * session ran the warm-up and is idle (the id recorded); failed: it will not become warm (image pull,
   * crash loop, a dead Livy session): removed and replaced.
   */
  state: "starting" | "warm" | "failed";
  livySessionId?: number | undefined;
}

/** Free: neither handed over nor going away. */
export function isFree(s: PooledServer): boolean {
  return !s.deleting && s.claimedBy === undefined;
}

/**
 * The warm, free server a LivySession takes, or undefined. Among several, the choice is spread by the
 * claimant's uid, so that LivySessions applied together try different servers rather than all the same one
 * (the compare-and-swap keeps it right either way; spreading keeps the 409s and retries few).
 */
export function pickServer(servers: readonly PooledServer[], claimantUid: string): PooledServer | undefined {
  const warm = servers
    .filter((s) => isFree(s) && s.state === "warm")
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (warm.length === 0) return undefined;
  const at = Number.parseInt(hashOf(claimantUid).slice(0, 8), 16) % warm.length;
  return warm[at];
}

/** The server of this pool already handed to the claimant (an interrupted hand-over to finish), if any. */
export function claimedBy(servers: readonly PooledServer[], claimantUid: string): PooledServer | undefined {
  return servers.find((s) => !s.deleting && s.claimedBy === claimantUid);
}

// ---------------------------------------------------------------- budget

/** Resource amounts in base units: CPU in cores, memory (and anything else) in bytes or units. */
export type Amounts = Record<string, number>;

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/**
 * A Kubernetes quantity ("500m", "2Gi", "1.5", 3, "1e3") as a number of base units; NaN for anything
 * else. Written here because the few forms the CRD admits (schema-kit's QUANTITY_PATTERN) need a dozen
 * lines, and client-node's helper parses only some of them.
 */
export function parseQuantity(q: string | number): number {
  if (typeof q === "number") return q;
  const m =
    /^\+?((?:[0-9]+(?:\.[0-9]*)?)|(?:\.[0-9]+))(?:([eE][-+]?[0-9]+(?:\.[0-9]*)?)|([KMGTPE]i|[numkMGTPE]))?$/.exec(
      q.trim(),
    );
  if (!m) return Number.NaN;
  const base = Number(m[1]);
  if (m[2]) return base * 10 ** Number(m[2].slice(1));
  const mult = SUFFIX[m[3] ?? ""];
  return mult === undefined ? Number.NaN : base * mult;
}

export function amountsOf(map: Record<string, string | number> | undefined): Amounts {
  const out: Amounts = {};
  for (const [k, v] of Object.entries(map ?? {})) {
    const n = parseQuantity(v);
    if (Number.isFinite(n)) out[k] = n;
  }
  return out;
}

/**
 * How many idle servers the budget holds: for each resource the budget names, budget ÷ one server's
 * request, rounded down; the least of them. A budget without a resource the server requests does not limit
 * by it; a server that requests nothing of a budgeted resource costs nothing of it. No budget: unlimited.
 */
export function budgetCapacity(budget: Amounts | undefined, perServer: Amounts): number {
  if (!budget) return Number.POSITIVE_INFINITY;
  let cap = Number.POSITIVE_INFINITY;
  for (const [res, limit] of Object.entries(budget)) {
    const each = perServer[res] ?? 0;
    if (each <= 0) continue;
    cap = Math.min(cap, Math.floor(limit / each + 1e-9));
  }
  return cap;
}

// ---------------------------------------------------------------- refill

export interface PoolInput {
  /** spec.size: free servers to keep. */
  size: number;
  /** spec.budget, parsed: what the free servers may request in total. */
  budget?: Amounts | undefined;
  /** What one server requests (its container's requests, the operator's defaults applied). */
  perServer: Amounts;
  /** The pool is being deleted: keep nothing free. */
  deleting?: boolean;
}

export interface RefillPlan {
  /** Free servers the pool should hold: min(size, what the budget holds), 0 while being deleted. */
  target: number;
  /** The budget, not size, set the target. */
  budgetLimited: boolean;
  /** New servers to start now. */
  create: number;
  /** Free servers to remove (failed ones, and the surplus when size or budget went down). */
  remove: string[];
  /** Counts after this plan (for status and metrics). */
  free: number;
  warm: number;
  starting: number;
  /** What the free servers request now, per resource (before this plan). */
  used: Amounts;
}

/**
 * What a pool does next: free servers that failed go (and are replaced), free servers beyond the target go
 * (those still starting first, then the youngest, so the warmest stay), and the shortfall is started.
 * Servers handed over are the LivySessions' and no longer count; servers being deleted count for nothing.
 */
export function planRefill(pool: PoolInput, servers: readonly PooledServer[]): RefillPlan {
  const free = servers.filter(isFree);
  const cap = budgetCapacity(pool.budget, pool.perServer);
  const target = pool.deleting ? 0 : Math.max(0, Math.min(pool.size, cap));
  const used: Amounts = {};
  for (const _ of free) for (const [r, v] of Object.entries(pool.perServer)) used[r] = (used[r] ?? 0) + v;
  const failed = free.filter((s) => s.state === "failed");
  const healthy = free.filter((s) => s.state !== "failed");
  // surplus: starting ones before warm ones; among equals the youngest first
  const byKeep = [...healthy].sort((a, b) => {
    const w = (s: PooledServer) => (s.state === "warm" ? 0 : 1);
    return w(a) - w(b) || a.createdMs - b.createdMs || (a.id < b.id ? -1 : 1);
  });
  const keep = byKeep.slice(0, target);
  const surplus = byKeep.slice(target);
  const create = Math.max(0, target - keep.length);
  return {
    target,
    budgetLimited: cap < pool.size,
    create,
    remove: [...failed, ...surplus].map((s) => s.id),
    free: keep.length + create,
    warm: keep.filter((s) => s.state === "warm").length,
    starting: keep.filter((s) => s.state !== "warm").length + create,
    used,
  };
}

/**
 * The id of a new pooled server: `<pool>-<suffix>`, the suffix from the pass's time and index (decisions
 * take no randomness), so livy-<id> fits in 63 characters for pool names up to POOL_NAME_MAX.
 */
export { POOL_NAME_MAX };
export function pooledServerId(pool: string, nowMs: number, index: number): string {
  return `${pool}-p${nowMs.toString(36)}${index.toString(36)}`;
}

// ---------------------------------------------------------------- pooled LivySessions

/**
 * A pooled server is started by a LivySession the pool owns (labelled POOL_LABEL), so that the reconciler
 * that starts any LivySession (decide.ts: server objects, Livy session, warm-up, failures) starts it too;
 * its state is that LivySession's status, and its claim the label on its Deployment.
 */
export interface PooledSessionLike {
  metadata: {
    name: string;
    creationTimestamp?: string | Date | undefined;
    deletionTimestamp?: string | Date | undefined;
  };
  status?:
    | {
        phase?: string | undefined;
        conditions?: ReadonlyArray<{ type: string; status: string }> | undefined;
        livySessionId?: number | null | undefined;
      }
    | undefined;
}

/**
 * A pooled LivySession: labelled POOL_LABEL and controlled by the LivySessionPool that label names. The
 * label alone is not enough: a user's LivySession that carries it (copied from a pooled one's YAML, say)
 * would be counted as a server of the pool, handed to another LivySession's claim, or deleted when the
 * pool scales down.
 */
export function pooledBy(o: {
  metadata?:
    | {
        labels?: Record<string, string> | undefined;
        ownerReferences?:
          | ReadonlyArray<{ kind: string; name: string; controller?: boolean | undefined }>
          | undefined;
      }
    | undefined;
}): string | undefined {
  const pool = o.metadata?.labels?.[POOL_LABEL];
  if (!pool) return undefined;
  const owned = o.metadata?.ownerReferences?.some(
    (r) => r.controller === true && r.kind === POOL_KIND && r.name === pool,
  );
  return owned ? pool : undefined;
}

export function pooledServerOf(
  member: PooledSessionLike,
  deployment: { metadata?: { labels?: Record<string, string> | undefined } | undefined } | undefined,
): PooledServer {
  const ready = member.status?.conditions?.find((c) => c.type === "Ready");
  const created = member.metadata.creationTimestamp;
  return {
    id: member.metadata.name,
    createdMs: created ? new Date(created).getTime() : 0,
    deleting: Boolean(member.metadata.deletionTimestamp),
    claimedBy: deployment?.metadata?.labels?.[CLAIMED_BY_LABEL],
    state: ready?.status === "True" ? "warm" : member.status?.phase === "Failed" ? "failed" : "starting",
    livySessionId: member.status?.livySessionId ?? undefined,
  };
}

/**
 * The spec of a pooled LivySession: the pool's template, never idling out, failing fast (then replaced),
 * and the longest startupTimeout: no one waits for a pooled server, and on a loaded node a real Livy start
 * took over 5 minutes (the default), which would have failed and replaced it forever.
 */
export function pooledSessionSpec(pool: {
  kind: string;
  server?: unknown;
  session?: unknown;
  warmup?: unknown;
  auth?: unknown;
}): Record<string, unknown> {
  const spec: Record<string, unknown> = {
    kind: pool.kind,
    idleTimeout: "0",
    startupTimeout: STARTUP_TIMEOUT_MAX,
    failurePolicy: "FailFast",
  };
  for (const k of ["server", "session", "warmup", "auth"] as const)
    if (pool[k] !== undefined) spec[k] = pool[k];
  return spec;
}

/** What a pool's pass does (pool-reconciler.ts carries it out). */
export interface PoolDecision {
  plan: RefillPlan;
  /** Names of the pooled LivySessions to create. */
  create: string[];
  /** Names of the pooled LivySessions to delete. */
  remove: string[];
  /** Servers handed over by this pool that LivySessions still hold. */
  handedOver: number;
  /** Look again after this long while something starts (a server becoming warm is seen by its watch). */
  requeueAfterMs?: number | undefined;
}

/**
 * A pool's pass, from its spec and its servers as observed: the refill plan and the names of the servers
 * to start. `handedOver` counts the Deployments this pool handed over that still exist.
 */
export function decidePool(
  pool: { name: string; input: PoolInput },
  servers: readonly PooledServer[],
  handedOver: number,
  nowMs: number,
): PoolDecision {
  const plan = planRefill(pool.input, servers);
  const create = Array.from({ length: plan.create }, (_, i) => pooledServerId(pool.name, nowMs, i));
  return { plan, create, remove: plan.remove, handedOver };
}
