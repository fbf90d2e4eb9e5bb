/**
 * Carries out a Plan, in the order plan.ts describes, and keeps the caches up to date with the API server's
 * answers (so the next step never acts on a copy older than its own write). Thin on purpose: every choice
 * was made by decide().
 */
import { isDeepStrictEqual } from "node:util";
import type { Logger } from "pino";
import {
  credentialSecretName,
  FINALIZER,
  GROUP,
  KIND,
  type LivySession,
  PLURAL,
  VERSION,
} from "../api/index.ts";
import {
  CORE,
  KubeApiError,
  type KubeClient,
  type KubeObject,
  type ResourceType,
  resourcePath,
} from "../kube/client.ts";
import type { Cache } from "../kube/informer.ts";
import type { LivyAuth, LivyClient } from "../livy/client.ts";
import { LivyHttpError, LivyUnreachableError, SessionGoneError } from "../livy/errors.ts";
import type { EventRecorder } from "./events.ts";
import { type Caches, ownedCache } from "./gather.ts";
import type { Metrics } from "./metrics.ts";
import { CREDENTIAL_HASH_ANNOTATION, FIELD_MANAGER, SPEC_HASH_ANNOTATION, serverName } from "./objects.ts";
import { APPLIED_FIRST, type DesiredObject, type OwnedKind, type Plan } from "./plan.ts";
import { CLAIMED_BY_LABEL, POOL_LABEL } from "./pool.ts";

export const LIVYSESSIONS: ResourceType = {
  group: GROUP,
  version: VERSION,
  plural: PLURAL,
  namespaced: true,
};

export interface ExecuteDeps {
  kube: KubeClient;
  caches: Caches;
  metrics: Metrics;
  events: EventRecorder;
  livyRequestTimeoutMs: number;
  livy(url: string, auth?: LivyAuth): LivyClient;
}

/**
 * POST /sessions gets longer than other Livy requests: Livy answers it only after launching the session's
 * Spark driver process and registering the session's name, 14 s at load average 18 on 2 cores and more at
 * 40. A POST given up on still creates its session, and the name is not visible (GET /sessions/{name}: 404)
 * until Livy registers it, so the next pass POSTs again: Livy launches a second driver before refusing it as
 * a duplicate name. On the real node at load 45, four such retries (5 s each) launched four extra drivers
 * in the Livy pod and starved the real one, whose session then died.
 */
export const CREATE_SESSION_TIMEOUT_MS = 120_000;

/** An object built from the spec was refused by the API server as invalid (HTTP 422). */
export class DerivedObjectRefused extends Error {
  override name = "DerivedObjectRefused";
}

const RESOURCE: Record<OwnedKind | "credential", ResourceType> = {
  deployment: CORE.deployments,
  service: CORE.services,
  configMap: CORE.configMaps,
  networkPolicy: CORE.networkPolicies,
  credential: CORE.secrets,
  serviceAccount: CORE.serviceAccounts,
  roleBinding: CORE.roleBindings,
};

export class Executor {
  private readonly d: ExecuteDeps;

  constructor(deps: ExecuteDeps) {
    this.d = deps;
  }

  private cache(kind: OwnedKind | "credential"): Cache<KubeObject> | undefined {
    return kind === "credential" ? undefined : ownedCache(this.d.caches, kind);
  }

  /**
   * `signal` ends the work of a replica that stopped leading: every request carries it, and no step starts
   * once it has aborted.
   */
  async execute(obj: LivySession, plan: Plan, log: Logger, signal?: AbortSignal): Promise<void> {
    for (const l of plan.log ?? []) log[l.level](l.fields ?? {}, l.msg);
    const act = () => signal?.throwIfAborted();
    let current = obj;
    let finalizer: Promise<LivySession> | undefined;
    if (plan.finalizer === "add") {
      act();
      const finalizers = [...(current.metadata.finalizers ?? []), FINALIZER];
      finalizer = this.patchFinalizers(current, finalizers, signal);
      // a new LivySession's objects are applied while the finalizer is added (one round trip for both)
      if (plan.apply?.length) finalizer.catch(() => undefined);
      else current = await finalizer;
    }
    if (plan.claim) {
      act();
      await this.claim(current, plan.claim, signal);
    }
    if (plan.adopt) {
      act();
      await this.adopt(current, plan.adopt, signal);
    }
    if (plan.deleteLivySession) {
      act();
      const { url, auth, id, name } = plan.deleteLivySession;
      await deleteLivySession(this.d.livy(url, auth), { id, name }, this.d.livyRequestTimeoutMs, log, signal);
    }
    // A warm-up statement goes out while the status is written: one round trip, not two, on the way to
    // Ready. Either order survives a crash (it is found again by its code, decide.ts).
    let warmup: Promise<void> | undefined;
    if (plan.submitWarmup) {
      act();
      warmup = this.submitWarmup(plan.submitWarmup, log, signal);
      warmup.catch(() => undefined);
    }
    // The Livy session of an attempt recorded by an earlier write goes out with this status write.
    let creating: Promise<void> | undefined;
    if (plan.createLivySession?.recorded) {
      act();
      creating = this.createLivySession(plan.createLivySession, log, signal);
      creating.catch(() => undefined);
    }
    let statusWritten = false;
    try {
      if (plan.status) {
        act();
        const written = await this.writeStatus(current, plan.status, signal);
        if (written) {
          current = written;
          statusWritten = true;
        }
      }
      if (plan.deletePooled) {
        act();
        // its finalizer stands down: its server's Deployment is claimed by this LivySession (decide.ts)
        await this.d.kube
          .delete(resourcePath(LIVYSESSIONS, current.metadata.namespace, plan.deletePooled), { signal })
          .catch(notFound);
      }
      for (const kind of plan.deleteOwned ?? []) {
        act();
        const name = current.status?.server ?? current.metadata.name;
        const path = resourcePath(
          RESOURCE[kind],
          current.metadata.namespace,
          kind === "credential" ? credentialSecretName(name) : serverName(name),
        );
        await this.d.kube.delete(path, { signal });
        if (kind !== "credential")
          this.cache(kind)?.markDeleted(`${current.metadata.namespace}/${serverName(name)}`);
      }
      if (plan.apply?.length) {
        act();
        // The driver's identity first (its pod cannot be created without its ServiceAccount), then the
        // independent objects together, all while the finalizer is added: a cold start waits for one round
        // trip (two in Kubernetes mode), not four.
        const first = plan.apply.filter((d) => APPLIED_FIRST.includes(d.kind));
        const rest = plan.apply.filter((d) => !APPLIED_FIRST.includes(d.kind));
        for (const wave of [first, rest]) {
          if (!wave.length) continue;
          act();
          await Promise.all(wave.map((d) => this.applyOne(d, signal)));
        }
        if (finalizer) current = await finalizer;
      }
      if (plan.credentialHash) {
        act();
        // metadata only: the server's pod template, and so the server, stays as it is
        const updated = await this.d.kube.mergePatch<KubeObject>(
          resourcePath(
            CORE.deployments,
            current.metadata.namespace,
            serverName(current.status?.server ?? current.metadata.name),
          ),
          { metadata: { annotations: { [CREDENTIAL_HASH_ANNOTATION]: plan.credentialHash } } },
          undefined,
          { signal },
        );
        this.cache("deployment")?.setIfNewer(updated);
      }
    } catch (err) {
      // a retry must not POST again while this POST is in flight: Livy lists its name only once it answered
      await creating?.catch(() => undefined);
      throw err;
    }
    if (creating) await creating;
    else if (plan.createLivySession) {
      act();
      await this.createLivySession(plan.createLivySession, log, signal);
    }
    if (warmup) await warmup;
    if (plan.finalizer === "remove") {
      act();
      const finalizers = (current.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
      await this.patchFinalizers(current, finalizers, signal);
    }
    if (plan.metrics?.demandToReadySeconds !== undefined && statusWritten)
      this.d.metrics.demandToReady.observe(plan.metrics.demandToReadySeconds);
    if (plan.metrics?.idleTeardown && statusWritten) this.d.metrics.idleTeardowns.inc();
    // a phase-change event is planned only with a status that changes the phase: it was written by now
    for (const e of plan.events ?? [])
      void this.d.events.record(target(current), e.type, e.reason, e.message);
  }

  private async createLivySession(
    c: NonNullable<Plan["createLivySession"]>,
    log: Logger,
    signal?: AbortSignal,
  ): Promise<void> {
    const created = await this.d.livy(c.url, c.auth).createSession(c.body, {
      timeoutMs: Math.max(this.d.livyRequestTimeoutMs, CREATE_SESSION_TIMEOUT_MS),
      ...(signal ? { signal } : {}),
    });
    log.info({ livySessionId: created.id, name: c.body.name }, "created Livy session");
  }

  private async submitWarmup(
    w: NonNullable<Plan["submitWarmup"]>,
    log: Logger,
    signal?: AbortSignal,
  ): Promise<void> {
    const st = await this.d.livy(w.url, w.auth).submitStatement(w.sessionId, w.code, {
      timeoutMs: this.d.livyRequestTimeoutMs,
      ...(signal ? { signal } : {}),
    });
    log.info({ livySessionId: w.sessionId, statement: st.id }, "submitted the warm-up statement");
  }

  /**
   * The claim of a pooled server (docs/warm-pool.md): a compare-and-swap on its Deployment. Of two
   * claimants one wins; the other gets 409, and its key is retried from the cache the watch brings.
   */
  private async claim(obj: LivySession, c: NonNullable<Plan["claim"]>, signal?: AbortSignal): Promise<void> {
    const updated = await this.d.kube.mergePatch<KubeObject>(
      resourcePath(CORE.deployments, obj.metadata.namespace, serverName(c.server)),
      {
        metadata: {
          resourceVersion: c.resourceVersion,
          labels: { [CLAIMED_BY_LABEL]: c.owner.uid, [POOL_LABEL]: c.pool },
          annotations: { [SPEC_HASH_ANNOTATION]: c.specHash },
          ownerReferences: [controllerRef(c.owner)],
        },
      },
      undefined,
      { signal },
    );
    this.cache("deployment")?.setIfNewer(updated);
  }

  /** The rest of a claimed server's objects: this LivySession becomes their owner (idempotent). */
  private async adopt(obj: LivySession, a: NonNullable<Plan["adopt"]>, signal?: AbortSignal): Promise<void> {
    await Promise.all(
      a.objects.map(async ({ kind, specHash }) => {
        const name = kind === "credential" ? credentialSecretName(a.server) : serverName(a.server);
        const patch = {
          metadata: {
            ownerReferences: [controllerRef(a.owner)],
            ...(specHash ? { annotations: { [SPEC_HASH_ANNOTATION]: specHash } } : {}),
          },
        };
        const updated = await this.d.kube
          .mergePatch<KubeObject>(
            resourcePath(RESOURCE[kind], obj.metadata.namespace, name),
            patch,
            undefined,
            {
              signal,
            },
          )
          .catch(notFound);
        if (updated) this.cache(kind)?.setIfNewer(updated);
      }),
    );
  }

  private async applyOne({ kind, object }: DesiredObject, signal?: AbortSignal): Promise<void> {
    let applied: KubeObject;
    try {
      applied = await this.d.kube.apply<KubeObject>(
        resourcePath(RESOURCE[kind], object.metadata.namespace, object.metadata.name),
        object,
        FIELD_MANAGER,
        { signal },
      );
    } catch (err) {
      // 422: the object built from the spec is invalid (a spec the CRD admits, e.g. pod annotations
      // over the 256 KiB total, or a request above its limit)
      if (err instanceof KubeApiError && err.status === 422)
        throw new DerivedObjectRefused(
          `the API server refused the ${RESOURCE[kind].plural} object built from this spec: ${err.message}`,
        );
      throw err;
    }
    this.cache(kind)?.setIfNewer(applied);
  }

  /**
   * Writes status through the status subresource, only when it changed; the written object, or null. The
   * patch carries the resourceVersion it was decided from: a status decided from an older copy (another
   * writer since, or a replica that stopped leading meanwhile) is refused with 409, and the key retried.
   */
  private async writeStatus(
    obj: LivySession,
    next: NonNullable<Plan["status"]>,
    signal?: AbortSignal,
  ): Promise<LivySession | null> {
    const pruned = prune(next);
    if (sameStatus(obj.status ?? {}, next)) return null;
    const patch: Record<string, unknown> = { ...pruned };
    for (const k of Object.keys(obj.status ?? {})) if (!(k in pruned)) patch[k] = null;
    const path = resourcePath(LIVYSESSIONS, obj.metadata.namespace, obj.metadata.name, "status");
    try {
      const updated = await this.d.kube.mergePatch<LivySession>(
        path,
        { metadata: { resourceVersion: obj.metadata.resourceVersion }, status: patch },
        undefined,
        { signal },
      );
      this.d.caches.sessions.setIfNewer(updated);
      return updated;
    } catch (err) {
      if (err instanceof KubeApiError && err.isNotFound) return null;
      throw err;
    }
  }

  private async patchFinalizers(
    obj: LivySession,
    finalizers: string[],
    signal?: AbortSignal,
  ): Promise<LivySession> {
    const path = resourcePath(LIVYSESSIONS, obj.metadata.namespace, obj.metadata.name);
    // resourceVersion makes it a compare-and-swap: a stale copy gets 409 and the key is retried
    try {
      const updated = await this.d.kube.mergePatch<LivySession>(
        path,
        { metadata: { finalizers, resourceVersion: obj.metadata.resourceVersion } },
        undefined,
        { signal },
      );
      this.d.caches.sessions.setIfNewer(updated);
      return updated;
    } catch (err) {
      // gone already: the last finalizer went in an earlier pass and the cache had not caught up
      if (err instanceof KubeApiError && err.isNotFound) return obj;
      throw err;
    }
  }
}

async function deleteLivySession(
  client: LivyClient,
  which: { id?: number | undefined; name?: string | undefined },
  timeoutMs: number,
  log: Logger,
  signal?: AbortSignal,
): Promise<void> {
  const opts = { timeoutMs, ...(signal ? { signal } : {}) };
  let id = which.id;
  try {
    if (id === undefined && which.name) id = (await client.findSessionByName(which.name, opts))?.id;
    if (id === undefined) return;
    await client.deleteSession(id, opts);
  } catch (err) {
    signal?.throwIfAborted();
    if (err instanceof SessionGoneError || err instanceof LivyUnreachableError) return;
    if (err instanceof LivyHttpError && err.status === 404) return;
    log.warn(
      { err: String(err), livySessionId: id ?? which.name },
      "could not delete the Livy session (the next look at Livy decides what follows)",
    );
  }
}

function notFound(err: unknown): null {
  if (err instanceof KubeApiError && err.isNotFound) return null;
  throw err;
}

function controllerRef(o: { apiVersion: string; kind: string; name: string; uid: string }) {
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    name: o.name,
    uid: o.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

function target(obj: LivySession) {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: KIND,
    name: obj.metadata.name,
    namespace: obj.metadata.namespace ?? "",
    uid: obj.metadata.uid ?? "",
    resourceVersion: obj.metadata.resourceVersion,
  };
}

/**
 * Whether `next` would change nothing in the stored status `current`. Key order is not significant: the API
 * server returns a custom resource's fields sorted by name, while decide() builds them in the order it sets
 * them, so comparing JSON texts (as before) saw every condition as changed and wrote the status again at
 * every pass (13 of 18 status writes of one LivySession's lifecycle, polled every 500 ms, changed nothing).
 * Fields left undefined or null are absent in both.
 */
export function sameStatus(current: object, next: object): boolean {
  const plain = (o: object) => JSON.parse(JSON.stringify(prune(o))) as unknown;
  return isDeepStrictEqual(plain(current), plain(next));
}

/** Drops undefined and null fields so that comparison and the merge patch see only what is set. */
function prune<T extends object>(o: T): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null) out[k] = v;
  return out;
}
