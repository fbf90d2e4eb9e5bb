/**
 * Carries out a Plan, in the order plan.ts describes, and keeps the caches up to date with the API server's
 * answers (so the next step never acts on a copy older than its own write). Thin on purpose: every choice
 * was made by decide().
 */
import type { Logger } from "pino";
import { FINALIZER, GROUP, KIND, type LivySession, PLURAL, VERSION } from "../api/index.ts";
import {
  CORE,
  KubeApiError,
  type KubeClient,
  type KubeObject,
  type ResourceType,
  resourcePath,
} from "../kube/client.ts";
import type { Informer } from "../kube/informer.ts";
import type { LivyAuth, LivyClient } from "../livy/client.ts";
import { LivyHttpError, LivyUnreachableError, SessionGoneError } from "../livy/errors.ts";
import type { EventRecorder } from "./events.ts";
import type { Caches } from "./gather.ts";
import type { Metrics } from "./metrics.ts";
import { FIELD_MANAGER, serverName } from "./objects.ts";
import type { OwnedKind, Plan } from "./plan.ts";

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

/** An object built from the spec was refused by the API server as invalid (HTTP 422). */
export class DerivedObjectRefused extends Error {
  override name = "DerivedObjectRefused";
}

const RESOURCE: Record<OwnedKind, ResourceType> = {
  deployment: CORE.deployments,
  service: CORE.services,
  configMap: CORE.configMaps,
  networkPolicy: CORE.networkPolicies,
};

export class Executor {
  private readonly d: ExecuteDeps;

  constructor(deps: ExecuteDeps) {
    this.d = deps;
  }

  private cache(kind: OwnedKind): Informer<KubeObject> | undefined {
    const c = this.d.caches;
    return {
      deployment: c.deployments,
      service: c.services,
      configMap: c.configMaps,
      networkPolicy: c.networkPolicies,
    }[kind] as Informer<KubeObject> | undefined;
  }

  async execute(obj: LivySession, plan: Plan, log: Logger): Promise<void> {
    for (const l of plan.log ?? []) log[l.level](l.fields ?? {}, l.msg);
    let current = obj;
    if (plan.finalizer === "add")
      current = await this.patchFinalizers(current, [...(current.metadata.finalizers ?? []), FINALIZER]);
    if (plan.deleteLivySession) {
      const { url, auth, id } = plan.deleteLivySession;
      await deleteLivySession(this.d.livy(url, auth), id, this.d.livyRequestTimeoutMs, log);
    }
    let statusWritten = false;
    if (plan.status) {
      const written = await this.writeStatus(current, plan.status);
      if (written) {
        current = written;
        statusWritten = true;
      }
    }
    for (const kind of plan.deleteOwned ?? []) {
      const ns = current.metadata.namespace ?? "";
      await this.d.kube.delete(resourcePath(RESOURCE[kind], ns, serverName(current.metadata.name)));
    }
    if (plan.apply?.length) {
      // independent objects: applied together, so a cold start waits for one round trip, not four
      await Promise.all(
        plan.apply.map(async ({ kind, object }) => {
          let applied: KubeObject;
          try {
            applied = await this.d.kube.apply<KubeObject>(
              resourcePath(RESOURCE[kind], object.metadata.namespace, object.metadata.name),
              object,
              FIELD_MANAGER,
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
        }),
      );
    }
    if (plan.createLivySession) {
      const { url, auth, body } = plan.createLivySession;
      const created = await this.d
        .livy(url, auth)
        .createSession(body, { timeoutMs: this.d.livyRequestTimeoutMs });
      log.info({ livySessionId: created.id, name: body.name }, "created Livy session");
    }
    if (plan.finalizer === "remove")
      await this.patchFinalizers(
        current,
        (current.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
      );
    if (plan.metrics?.demandToReadySeconds !== undefined && statusWritten)
      this.d.metrics.demandToReady.observe(plan.metrics.demandToReadySeconds);
    if (plan.metrics?.idleTeardown && statusWritten) this.d.metrics.idleTeardowns.inc();
    // a phase-change event is planned only with a status that changes the phase: it was written by now
    for (const e of plan.events ?? [])
      void this.d.events.record(target(current), e.type, e.reason, e.message);
  }

  /** Writes status through the status subresource, only when it changed; the written object, or null. */
  private async writeStatus(
    obj: LivySession,
    next: NonNullable<Plan["status"]>,
  ): Promise<LivySession | null> {
    const pruned = prune(next);
    if (JSON.stringify(pruned) === JSON.stringify(prune(obj.status ?? {}))) return null;
    const patch: Record<string, unknown> = { ...pruned };
    for (const k of Object.keys(obj.status ?? {})) if (!(k in pruned)) patch[k] = null;
    const path = resourcePath(LIVYSESSIONS, obj.metadata.namespace, obj.metadata.name, "status");
    try {
      const updated = await this.d.kube.mergePatch<LivySession>(path, { status: patch });
      this.d.caches.sessions.setIfNewer(updated);
      return updated;
    } catch (err) {
      if (err instanceof KubeApiError && err.isNotFound) return null;
      throw err;
    }
  }

  private async patchFinalizers(obj: LivySession, finalizers: string[]): Promise<LivySession> {
    const path = resourcePath(LIVYSESSIONS, obj.metadata.namespace, obj.metadata.name);
    // resourceVersion makes it a compare-and-swap: a stale copy gets 409 and the key is retried
    try {
      const updated = await this.d.kube.mergePatch<LivySession>(path, {
        metadata: { finalizers, resourceVersion: obj.metadata.resourceVersion },
      });
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
  id: number,
  timeoutMs: number,
  log: Logger,
): Promise<void> {
  try {
    await client.deleteSession(id, { timeoutMs });
  } catch (err) {
    if (err instanceof SessionGoneError || err instanceof LivyUnreachableError) return;
    if (err instanceof LivyHttpError && err.status === 404) return;
    log.warn(
      { err: String(err), livySessionId: id },
      "could not delete the Livy session (the next look at Livy decides what follows)",
    );
  }
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

/** Drops undefined fields so that comparison and the merge patch see only what is set. */
function prune<T extends object>(o: T): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null) out[k] = v;
  return out;
}
