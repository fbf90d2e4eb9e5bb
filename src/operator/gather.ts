/**
 * The I/O that builds an Observation: the caches (LivySessions, owned objects, pods), the auth Secret, and
 * Livy's answers when decide() asks for them. Every failure becomes data (LivyFailure), never an exception,
 * so that decide() sees it.
 */
import { credentialUid, type LivySession, type LivySessionPool, sessionCredential } from "../api/index.ts";
import { CORE, type KubeClient, type KubeObject, resourcePath } from "../kube/client.ts";
import type { Cache } from "../kube/informer.ts";
import type { LivyAuth, LivyClient } from "../livy/client.ts";
import {
  LivyHttpError,
  LivyProtocolError,
  LivyTimeoutError,
  LivyUnreachableError,
  SessionGoneError,
} from "../livy/errors.ts";
import { isSessionUsable, LIVY_MESSAGES, type Session } from "../livy/protocol.ts";
import { authFromSecret, type SecretLike } from "../livy/secret-auth.ts";
import type { OperatorConfig } from "./config.ts";
import { serverName, usesCredential } from "./objects.ts";
import { type DeploymentLike, observeActivity, ofAnotherLivySession, type PodLike } from "./observe.ts";
import type {
  Activity,
  AuthObservation,
  LivyAnswer,
  LivyFailure,
  LivyObservation,
  LivyQuery,
  Memory,
  Observation,
  OwnedKind,
  OwnedObjects,
} from "./plan.ts";
import { pooledBy } from "./pool.ts";
import { observePoolFor } from "./pool-gather.ts";

export interface Caches {
  /** Indexed by the pool of pooled LivySessions (`namespace/pool`, pool.ts pooledBy). */
  sessions: Cache<LivySession>;
  /** LivySessionPools; absent: no pool is watched (nothing is handed over). */
  pools?: Cache<LivySessionPool> | undefined;
  /** Only with --network-policy. */
  networkPolicies?: Cache<KubeObject>;
  deployments: Cache<KubeObject & DeploymentLike>;
  services: Cache<KubeObject>;
  configMaps: Cache<KubeObject>;
  pods: Cache<KubeObject & PodLike>;
  /** The drivers' ServiceAccounts and RoleBindings (Spark's kubernetes mode). */
  serviceAccounts: Cache<KubeObject>;
  roleBindings: Cache<KubeObject & { roleRef?: { name?: string } }>;
}

/** The cache of each kind the operator makes per server (one home for the kind → cache map). */
export function ownedCache(c: Caches, kind: OwnedKind): Cache<KubeObject> | undefined {
  return {
    deployment: c.deployments,
    service: c.services,
    configMap: c.configMaps,
    networkPolicy: c.networkPolicies,
    serviceAccount: c.serviceAccounts,
    roleBinding: c.roleBindings,
  }[kind];
}

export interface GatherDeps {
  kube: KubeClient;
  caches: Caches;
  config: OperatorConfig;
  /** A Livy client per server URL and credentials (kept alive across passes). */
  livy(url: string, auth?: LivyAuth): LivyClient;
  /** The key shared with the gateway (--session-key-secret), once read; null: no per-session credentials. */
  sessionKey?: () => Buffer | null;
}

/** How many Livy sessions and batches of a server are looked at for activity. */
const ACTIVITY_PAGE = 100;
/** How many of a starting session's first statements are searched for its warm-up statement. */
const WARMUP_PAGE = 20;

export class Gatherer {
  private readonly d: GatherDeps;
  readonly secrets: SecretCache;

  constructor(deps: GatherDeps) {
    this.d = deps;
    this.secrets = new SecretCache((ns, name, signal) =>
      deps.kube.getOrNull<SecretLike>(resourcePath(CORE.secrets, ns, name), signal ? { signal } : {}),
    );
  }

  /** Everything but Livy: the caches and the auth Secret. */
  async observe(
    obj: LivySession,
    memory: Memory,
    refused: string | undefined,
    signal?: AbortSignal,
  ): Promise<Observation> {
    const ns = obj.metadata.namespace ?? "";
    // a server taken from a pool keeps its id (docs/warm-pool.md)
    const server = obj.status?.server ?? obj.metadata.name;
    const key = `${ns}/${serverName(server)}`;
    const c = this.d.caches;
    const owned: OwnedObjects = {
      deployment: c.deployments.get(key),
      service: c.services.get(key),
      configMap: c.configMaps.get(key),
      networkPolicy: c.networkPolicies?.get(key),
      serviceAccount: c.serviceAccounts.get(key),
      roleBinding: c.roleBindings.get(key),
    };
    // by the owner index: filtering a copy of the whole pod cache made every pass O(N)
    const pods = c.pods.byIndex(`${ns}/${server}`);
    const credential = this.credential(obj);
    const pool = observePoolFor(obj, c);
    const member = server !== obj.metadata.name ? c.sessions.get(`${ns}/${server}`) : undefined;
    return {
      now: Date.now(),
      resource: obj,
      settings: this.d.config,
      owned,
      pods,
      auth: await this.auth(obj, signal),
      refused,
      memory,
      ...(credential ? { credential } : {}),
      ...(pool ? { pool } : {}),
      ...(member && pooledBy(member)
        ? { handedFrom: { name: member.metadata.name, deleting: Boolean(member.metadata.deletionTimestamp) } }
        : {}),
    };
  }

  /** The per-session credential the LivySession's server demands, or undefined (src/api/credential.ts). */
  credential(obj: LivySession): string | undefined {
    const key = this.d.sessionKey?.() ?? null;
    if (!key || !obj.metadata.uid || !usesCredential(obj.spec, true)) return undefined;
    // a server taken from a pool keeps the credential it was started with: derived from the pooled
    // LivySession's uid, recorded as status.serverUID (docs/warm-pool.md)
    const uid = credentialUid(obj);
    return uid ? sessionCredential(key, uid) : undefined;
  }

  /**
   * What the operator presents to the LivySession's server: the credentials of `spec.auth`, from its Secret
   * (read through the cache), or the per-session credential.
   */
  async auth(obj: LivySession, signal?: AbortSignal): Promise<AuthObservation> {
    const auth = obj.spec.auth;
    if (!auth) {
      const credential = this.credential(obj);
      return credential ? { state: "ok", auth: { type: "bearer", token: credential } } : { state: "none" };
    }
    const ns = obj.metadata.namespace ?? "";
    const resolve = (secret: SecretLike | null): AuthObservation => {
      try {
        return { state: "ok", auth: authFromSecret(auth, secret) };
      } catch (err) {
        return { state: "invalid", message: err instanceof Error ? err.message : String(err) };
      }
    };
    const first = resolve(await this.secrets.get(ns, auth.secretName, signal));
    if (first.state !== "invalid") return first;
    // being waited for (missing, or lacking a key): read again sooner than a good one
    return resolve(await this.secrets.get(ns, auth.secretName, signal, SecretCache.MISSING_TTL_MS));
  }

  /** What decide() asked of Livy. */
  async livy(q: LivyQuery, signal?: AbortSignal): Promise<LivyObservation> {
    const client = this.d.livy(q.url, q.auth);
    const opts = { timeoutMs: this.d.config.livyRequestTimeoutMs, ...(signal ? { signal } : {}) };
    const session = await answer(() =>
      q.sessionId !== undefined
        ? client.getSession(q.sessionId, opts)
        : client.findSessionByName(q.sessionName ?? "", opts),
    );
    const out: LivyObservation = { url: q.url, session };
    // the warm-up and the activity are read together: one round trip, not two, on the way to Ready
    const reads: Promise<void>[] = [];
    if (q.warmup && session.ok && session.value && isSessionUsable(session.value.state)) {
      const { code } = q.warmup;
      const id = session.value.id;
      // the warm-up is submitted as soon as the session is usable: among its first statements
      reads.push(
        answer(
          async () =>
            (await client.listStatements(id, { from: 0, size: WARMUP_PAGE, ...opts })).statements.find(
              (s) => s.code === code,
            ) ?? null,
        ).then((a) => {
          out.warmup = a;
        }),
      );
    }
    // the activity's list of sessions was read after the session itself: its copy of the session is the newer
    let listed: Session | undefined;
    if (q.activity && session.ok && session.value && isSessionUsable(session.value.state)) {
      const own = session.value;
      reads.push(
        this.activity(client, own, q, opts, (s) => {
          listed = s;
        }).then((a) => {
          out.activity = a;
        }),
      );
    }
    await Promise.all(reads);
    // A short warm-up (as the look right after its submission sees it) ends between the two reads: the
    // session read `busy`, the statement read done. Decided from the first copy, Ready waited for one more
    // look (decide.ts); from the newer one, it is Ready at this one.
    if (listed) out.session = { ok: true, value: listed };
    return out;
  }

  /** The activity on the server (observe.ts observeActivity), its own session's read already. */
  private activity(
    client: LivyClient,
    read: Session,
    q: LivyQuery,
    opts: { timeoutMs: number; signal?: AbortSignal },
    onListed: (own: Session) => void,
  ): Promise<LivyAnswer<Activity>> {
    return answer(async (): Promise<Activity> => {
      const newestOf = async (id: number) =>
        (await client.listStatements(id, { order: "desc", size: 1, ...opts })).statements[0];
      const [others, batches, ownNewest] = await Promise.all([
        client.listSessions({ from: 0, size: ACTIVITY_PAGE, ...opts }),
        client.listBatches({ from: 0, size: ACTIVITY_PAGE, ...opts }).catch((err: unknown) => {
          // a server that serves no batches has none running
          if (err instanceof LivyHttpError && err.status === 404) return { sessions: [] };
          throw err;
        }),
        newestOf(read.id),
      ]);
      // the list was read after the session: its copy is the newer one
      const own = others.sessions.find((s) => s.id === read.id) ?? read;
      if (own !== read) onListed(own);
      const newest = new Map([[own.id, ownNewest]]);
      const usable = others.sessions.filter(
        (s) => s.id !== own.id && isSessionUsable(s.state) && !ofAnotherLivySession(s.name, q.owner),
      );
      // the others' statements are read as far as they answer (one may end meanwhile)
      const theirs = await Promise.all(usable.map((s) => newestOf(s.id).catch(() => undefined)));
      for (const [i, s] of usable.entries()) newest.set(s.id, theirs[i]);
      return observeActivity({
        owner: q.owner,
        sessions: [own, ...others.sessions.filter((s) => s.id !== own.id)],
        newest,
        batches: batches.sessions,
      });
    });
  }
}

async function answer<T>(fn: () => Promise<T>): Promise<LivyAnswer<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, error: failureOf(err) };
  }
}

/** A Livy client error as data. */
export function failureOf(err: unknown): LivyFailure {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof SessionGoneError || (err instanceof LivyHttpError && err.status === 404))
    return { kind: "gone", message, status: 404 };
  if (err instanceof LivyHttpError)
    return {
      kind: "http",
      message,
      status: err.status,
      ...(err.status === 400 && LIVY_MESSAGES.tooManySessions.test(err.msg) ? { tooManySessions: true } : {}),
    };
  if (err instanceof LivyUnreachableError) return { kind: "unreachable", message };
  if (err instanceof LivyTimeoutError) return { kind: "timeout", message };
  if (err instanceof LivyProtocolError) return { kind: "protocol", message };
  return { kind: "unreachable", message };
}

/**
 * The auth Secrets, each read at most once per TTL (a starting session is looked at every 100 ms; reading
 * its Secret each time cost an API request each time, and a missing one was asked for forever). As the
 * kubelet's secret manager does, with a time to live rather than a watch: the operator's RBAC lets it read
 * the Secrets that LivySessions name, not list every Secret of the cluster.
 */
export class SecretCache {
  /** A Secret found: rotated credentials are used within this long (or at once after Livy refused them). */
  static readonly FOUND_TTL_MS = 30_000;
  /** A Secret missing: created, it is seen within this long. */
  static readonly MISSING_TTL_MS = 5_000;
  private readonly entries = new Map<string, { secret: SecretLike | null; at: number }>();
  private readonly fetch: (ns: string, name: string, signal?: AbortSignal) => Promise<SecretLike | null>;
  private readonly now: () => number;
  private sweptAt = 0;

  constructor(
    fetch: (ns: string, name: string, signal?: AbortSignal) => Promise<SecretLike | null>,
    now: () => number = Date.now,
  ) {
    this.fetch = fetch;
    this.now = now;
  }

  /** The Secret, read again when the copy held is older than `maxAgeMs` (by default its TTL). */
  async get(ns: string, name: string, signal?: AbortSignal, maxAgeMs?: number): Promise<SecretLike | null> {
    this.sweep();
    const key = `${ns}/${name}`;
    const hit = this.entries.get(key);
    const ttl = maxAgeMs ?? (hit?.secret ? SecretCache.FOUND_TTL_MS : SecretCache.MISSING_TTL_MS);
    if (hit && this.now() - hit.at < ttl) return hit.secret;
    const secret = await this.fetch(ns, name, signal);
    this.entries.set(key, { secret, at: this.now() });
    return secret;
  }

  /** Drops what no LivySession asked for lately (a Secret name no longer used), at most once a minute. */
  private sweep(): void {
    const now = this.now();
    if (now - this.sweptAt < 60_000) return;
    this.sweptAt = now;
    for (const [k, e] of this.entries) if (now - e.at > SecretCache.FOUND_TTL_MS) this.entries.delete(k);
  }

  /** Reads it again next time (Livy refused the credentials; the LivySession is gone). */
  invalidate(ns: string, name: string): void {
    this.entries.delete(`${ns}/${name}`);
  }

  get size(): number {
    return this.entries.size;
  }
}
