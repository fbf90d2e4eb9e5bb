import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { LivySession, LivySessionPool } from "../api/index.ts";
import {
  CORE,
  KubeApiError,
  type KubeClient,
  type KubeObject,
  type ResourceType,
  resourcePath,
} from "../kube/client.ts";
import { Informer } from "../kube/informer.ts";
import { keepDeployment, keepMetadataOnly, keepPod, ownerKey } from "./cached.ts";
import { type OperatorConfig, serverUrl } from "./config.ts";
import { EventRecorder } from "./events.ts";
import { LivyClients } from "./livy-clients.ts";
import type { Metrics } from "./metrics.ts";
import { LIVY_PORT, MANAGED_SELECTOR, SESSION_LABEL, serverName } from "./objects.ts";
import type { DeploymentLike, PodLike } from "./observe.ts";
import { handedOverIndexOf, poolIndexOf } from "./pool-gather.ts";
import { LIVYSESSIONPOOLS, PoolReconciler } from "./pool-reconciler.ts";
import { WorkQueue } from "./queue.ts";
import { type Caches, LIVYSESSIONS, type ReconcileResult, Reconciler } from "./reconciler.ts";

/** Work-queue keys of LivySessionPools: `pool:<namespace>/<name>` (LivySessions are `<namespace>/<name>`). */
export const POOL_KEY = "pool:";

/** Caches over one or several namespaces, seen as one (the reconciler does not care which). */
class MultiCache<T extends KubeObject> {
  readonly parts: Informer<T>[];
  constructor(parts: Informer<T>[]) {
    this.parts = parts;
  }
  private partFor(key: string): Informer<T> | undefined {
    if (this.parts.length === 1) return this.parts[0];
    const ns = key.split("/")[0];
    return this.parts.find((p) => p.namespace === ns);
  }
  get(key: string): T | undefined {
    return this.partFor(key)?.get(key);
  }
  list(): T[] {
    return this.parts.flatMap((p) => p.list());
  }
  *values(): IterableIterator<T> {
    for (const p of this.parts) yield* p.values();
  }
  byIndex(value: string): T[] {
    const part = this.partFor(value);
    return part ? part.byIndex(value) : [];
  }
  setIfNewer(obj: T): void {
    this.partFor(`${obj.metadata?.namespace}/`)?.setIfNewer(obj);
  }
  markDeleted(key: string, at?: string): void {
    this.partFor(key)?.markDeleted(key, at);
  }
  get hasSynced(): boolean {
    return this.parts.every((p) => p.hasSynced);
  }
}

export interface Controller {
  /** Starts the caches (a standby replica keeps them warm too). */
  startInformers(): Promise<void>;
  /**
   * Starts reconciling: call once this replica may act (the leader, or no leader election). `term` (the
   * leader's) ends every pass in flight when it aborts: no request of a replica that stopped leading goes on.
   */
  startWorkers(term?: AbortSignal): void;
  /** Stops the workers: in-flight passes finish, or with `abort` are cancelled at once. */
  stop(opts?: { abort?: boolean }): Promise<void>;
  readonly synced: boolean;
  /** Resources (with namespace) whose list/watch is down now; empty when every cache follows the API server. */
  unhealthyWatches(): string[];
  readonly queue: WorkQueue;
  readonly caches: Caches;
}

/**
 * Wires informers (LivySessions and the objects they own), the work queue and the workers. Informer
 * callbacks only enqueue keys; workers run the reconciler, one pass per key at a time.
 */
export function createController(opts: {
  kube: KubeClient;
  config: OperatorConfig;
  metrics: Metrics;
  log: Logger;
  /** The key shared with the gateway (--session-key-secret), once read. */
  sessionKey?: () => Buffer | null;
  /** Watch LivySessionPools (the API server serves them: servesPools). */
  pools?: boolean;
}): Controller {
  const { kube, config, metrics, log } = opts;
  const name = "livysession";
  const queue = new WorkQueue({
    hooks: {
      onDepth: (d) => metrics.queueDepth.set({ name }, d),
      onAdd: () => metrics.queueAdds.inc({ name }),
      onRetry: () => metrics.queueRetries.inc({ name }),
      onQueueLatency: (s) => metrics.queueLatency.observe({ name }, s),
    },
  });
  const namespaces: Array<string | undefined> = config.namespaces.length ? config.namespaces : [undefined];
  const informers: Informer<KubeObject>[] = [];
  const informerNames = new Map<Informer<KubeObject>, string>();
  function cacheOf<T extends KubeObject>(
    rt: ResourceType,
    resource: string,
    selector?: string,
    keep?: { transform?: (o: KubeObject) => KubeObject; indexBy?: (o: KubeObject) => string | undefined },
  ): MultiCache<T> {
    const parts = namespaces.map((ns) => {
      const inf = new Informer<T>(kube, {
        path: resourcePath(rt, ns),
        namespace: ns,
        labelSelector: selector,
        ...keep,
        stallTimeoutMs: config.watchStallTimeoutMs,
        ...(config.watchTimeoutSeconds === undefined
          ? {}
          : { watchTimeoutSeconds: config.watchTimeoutSeconds }),
        onRestart: (reason) => {
          metrics.watchRestarts.inc({ resource, reason });
          log.warn({ resource, namespace: ns, reason }, "list/watch restarted");
        },
        // every cache follows the API server again: what failed while it did not starts afresh (queue.ts)
        onRelisted: () => {
          if (informers.every((i) => i.healthy)) queue.forgetAll();
        },
        onError: (err) => log.warn({ resource, err: String(err) }, "list/watch failed"),
      });
      informers.push(inf as unknown as Informer<KubeObject>);
      informerNames.set(inf as unknown as Informer<KubeObject>, ns ? `${resource} in ${ns}` : resource);
      return inf;
    });
    return new MultiCache<T>(parts);
  }
  // pooled LivySessions indexed by their pool (pool-gather.ts)
  const sessions = cacheOf<LivySession>(LIVYSESSIONS, "livysessions", undefined, { indexBy: poolIndexOf });
  // only when the API server serves them (a cluster with the LivySession CRD alone has no pools)
  const pools = opts.pools ? cacheOf<LivySessionPool>(LIVYSESSIONPOOLS, "livysessionpools") : undefined;
  // owned objects and pods are cached as far as decisions read them (cached.ts); pods by owner
  const metadataOnly = { transform: keepMetadataOnly };
  const deployments = cacheOf<KubeObject & DeploymentLike>(
    CORE.deployments,
    "deployments",
    MANAGED_SELECTOR,
    {
      transform: keepDeployment,
      // the servers a pool handed over, by pool (pool-reconciler.ts counts them)
      indexBy: handedOverIndexOf,
    },
  );
  const services = cacheOf<KubeObject>(CORE.services, "services", MANAGED_SELECTOR, metadataOnly);
  const configMaps = cacheOf<KubeObject>(CORE.configMaps, "configmaps", MANAGED_SELECTOR, metadataOnly);
  const pods = cacheOf<KubeObject & PodLike>(CORE.pods, "pods", MANAGED_SELECTOR, {
    transform: keepPod,
    indexBy: ownerKey,
  });
  const networkPolicies = config.networkPolicy
    ? cacheOf<KubeObject>(CORE.networkPolicies, "networkpolicies", MANAGED_SELECTOR, metadataOnly)
    : undefined;
  const serviceAccounts = cacheOf<KubeObject>(CORE.serviceAccounts, "serviceaccounts", MANAGED_SELECTOR);
  const roleBindings = cacheOf<KubeObject>(CORE.roleBindings, "rolebindings", MANAGED_SELECTOR);
  const caches = {
    sessions,
    pools,
    deployments,
    services,
    configMaps,
    pods,
    networkPolicies,
    serviceAccounts,
    roleBindings,
  } satisfies Caches as Caches;

  const keyOf = (o: KubeObject) => `${o.metadata?.namespace}/${o.metadata?.name}`;
  /** `namespace/<server id>` → the LivySession holding that pooled server (status.server). */
  const holderOf = new Map<string, string>();
  const poolOf = (o: KubeObject) => {
    const k = poolIndexOf(o);
    if (k) queue.add(`${POOL_KEY}${k}`);
  };
  const noteServer = (o: LivySession) => {
    const server = o.status?.server;
    if (server) holderOf.set(`${o.metadata.namespace}/${server}`, keyOf(o));
  };
  for (const inf of pools?.parts ?? []) {
    inf.addHandlers({
      onAdd: (o) => queue.add(`${POOL_KEY}${keyOf(o)}`),
      onUpdate: (_, o) => queue.add(`${POOL_KEY}${keyOf(o)}`),
      onDelete: (o) => queue.add(`${POOL_KEY}${keyOf(o)}`),
    });
  }
  for (const inf of sessions.parts) {
    inf.addHandlers({
      onAdd: (o) => {
        usesOf.set(urlOf(o), (usesOf.get(urlOf(o)) ?? 0) + 1);
        // a first look (a new LivySession, or each one of the initial list) waits behind progress
        queue.add(keyOf(o), "new");
        poolOf(o);
        noteServer(o);
      },
      onUpdate: (prev, o) => {
        // a pooled server's state is its LivySession's status: its pool looks again at every change
        poolOf(o);
        noteServer(o);
        // Our own status writes change neither generation, metadata nor deletion: skip those echoes.
        const m0 = prev.metadata ?? {};
        const m1 = o.metadata ?? {};
        const relisted = m0.resourceVersion === m1.resourceVersion;
        const changed =
          m0.generation !== m1.generation ||
          m0.deletionTimestamp !== m1.deletionTimestamp ||
          JSON.stringify(m0.annotations ?? {}) !== JSON.stringify(m1.annotations ?? {}) ||
          JSON.stringify(m0.finalizers ?? []) !== JSON.stringify(m1.finalizers ?? []);
        if (relisted || changed) queue.add(keyOf(o));
      },
      onDelete: (o) => {
        queue.cancelTimer(keyOf(o));
        queue.forget(keyOf(o));
        reconciler.forget(keyOf(o), o);
        releaseLivyClients(o);
        poolOf(o);
        if (o.status?.server) holderOf.delete(`${o.metadata.namespace}/${o.status.server}`);
      },
    });
  }
  const toOwner = (o: KubeObject) => {
    const owner = o.metadata?.labels?.[SESSION_LABEL];
    if (!owner || !o.metadata?.namespace) return;
    const key = `${o.metadata.namespace}/${owner}`;
    // a pooled server handed over keeps its labels: its events go to the LivySession holding it
    queue.add(holderOf.get(key) ?? key);
    poolOf(o);
  };
  for (const c of [
    deployments,
    services,
    configMaps,
    pods,
    serviceAccounts,
    roleBindings,
    ...(networkPolicies ? [networkPolicies] : []),
  ] as MultiCache<KubeObject>[]) {
    for (const inf of c.parts)
      inf.addHandlers({ onAdd: toOwner, onUpdate: (_, o) => toOwner(o), onDelete: toOwner });
  }

  metrics.setPhaseSource(function* () {
    for (const s of sessions.values()) yield s.status?.phase ?? "Pending";
  });

  const livyClients = new LivyClients({
    requestTimeoutMs: config.livyRequestTimeoutMs,
    pollIntervalMs: config.sessionPollIntervalMs,
  });
  /** LivySessions per Livy server URL. */
  const usesOf = new Map<string, number>();
  const urlOf = (o: KubeObject) =>
    serverUrl(config.serverUrlTemplate, {
      name: o.metadata?.name ?? "",
      namespace: o.metadata?.namespace ?? "",
      service: serverName(o.metadata?.name ?? ""),
      port: LIVY_PORT,
    });
  /**
   * Closes the Livy clients of a deleted LivySession's server, unless another one uses the same URL (counted
   * as the sessions come and go: looking through every LivySession at each deletion was O(N) each, O(N²)
   * to delete them all, with one URL shared by all).
   */
  function releaseLivyClients(gone: KubeObject): void {
    const url = urlOf(gone);
    const left = (usesOf.get(url) ?? 1) - 1;
    if (left > 0) {
      usesOf.set(url, left);
      return;
    }
    usesOf.delete(url);
    livyClients.release(url);
  }
  const events = new EventRecorder(kube, log);
  const poolReconciler = new PoolReconciler({ kube, caches, config, metrics });
  const reconciler = new Reconciler({
    kube,
    caches,
    config,
    metrics,
    events,
    livy: (url, auth) => livyClients.get(url, auth),
    ...(opts.sessionKey ? { sessionKey: opts.sessionKey } : {}),
  });

  let running: Promise<void>[] = [];
  let stopping = false;
  const labels = { controller: name };
  const cancel = new AbortController();
  let passSignal: AbortSignal = cancel.signal;

  async function worker(): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const rid = randomUUID().slice(0, 8);
      const klog = log.child({ namespace: key.split("/")[0], name: key.split("/")[1], reconcileID: rid });
      const end = metrics.reconcileTime.startTimer(labels);
      metrics.activeWorkers.inc(labels);
      try {
        const res: ReconcileResult = key.startsWith(POOL_KEY)
          ? await poolReconciler.reconcile(key.slice(POOL_KEY.length), klog, passSignal)
          : await reconciler.reconcile(key, klog, passSignal);
        klog.debug({ requeueAfterMs: res.requeueAfterMs }, "reconciled");
        queue.forget(key);
        if (res.requeueAfterMs !== undefined) {
          queue.addAfter(key, res.requeueAfterMs, res.routine ? "routine" : "progress");
          metrics.reconcileTotal.inc({ ...labels, result: "requeue_after" });
        } else {
          metrics.reconcileTotal.inc({ ...labels, result: "success" });
        }
      } catch (err) {
        if (passSignal.aborted) {
          // this replica stopped leading (or is stopping): the key is the next leader's
          metrics.reconcileTotal.inc({ ...labels, result: "requeue" });
          klog.info({ why: String(passSignal.reason) }, "pass cancelled");
          continue;
        }
        const conflict = err instanceof KubeApiError && err.isConflict;
        const delay = queue.addRateLimited(key);
        if (conflict) {
          // an older copy: the watch brings the new one, the retry acts on it
          metrics.reconcileTotal.inc({ ...labels, result: "requeue" });
          klog.debug({ delay }, "conflict, retrying");
        } else {
          metrics.reconcileTotal.inc({ ...labels, result: "error" });
          metrics.reconcileErrors.inc(labels);
          klog.error(
            {
              err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err),
              retryInMs: delay,
            },
            "reconcile failed",
          );
        }
      } finally {
        end();
        metrics.activeWorkers.dec(labels);
        queue.done(key);
      }
    }
  }

  return {
    queue,
    caches,
    get synced() {
      return informers.every((i) => i.hasSynced);
    },
    unhealthyWatches() {
      return informers.filter((i) => !i.healthy).map((i) => informerNames.get(i) ?? "?");
    },
    async startInformers() {
      for (const inf of informers) inf.start();
      await Promise.all(informers.map((i) => i.waitForSync()));
    },
    startWorkers(term?: AbortSignal) {
      if (stopping || running.length) return;
      if (term) passSignal = AbortSignal.any([cancel.signal, term]);
      metrics.maxWorkers.set(labels, config.concurrency);
      log.info(
        {
          sessions: sessions.list().length,
          namespaces: config.namespaces.length ? config.namespaces : "all",
        },
        "caches synced, starting workers",
      );
      running = Array.from({ length: config.concurrency }, () => worker());
    },
    async stop(opts: { abort?: boolean } = {}) {
      stopping = true;
      if (opts.abort) cancel.abort(new Error("the controller stopped"));
      queue.shutdown();
      await Promise.all(running);
      await Promise.all(informers.map((i) => i.stop()));
      await livyClients.close();
    },
  };
}

/** Checks that the CRD is served before anything starts, with a message that says what to do. */
export async function checkCrdInstalled(kube: KubeClient): Promise<void> {
  try {
    await kube.get(`/apis/${LIVYSESSIONS.group}/${LIVYSESSIONS.version}`);
  } catch (err) {
    if (err instanceof KubeApiError && err.isNotFound) {
      throw new Error(
        `the LivySession CRD (livysessions.${LIVYSESSIONS.group}) is not installed in ${kube.server}: kubectl apply -f crds/ (or install the Helm chart)`,
      );
    }
    throw new Error(
      `cannot reach the Kubernetes API at ${kube.server}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** Whether the API server serves LivySessionPools (their CRD installed): the operator watches them then. */
export async function servesPools(kube: KubeClient): Promise<boolean> {
  try {
    const list = await kube.get<{ resources?: Array<{ name?: string }> }>(
      `/apis/${LIVYSESSIONPOOLS.group}/${LIVYSESSIONPOOLS.version}`,
    );
    return (list.resources ?? []).some((r) => r.name === LIVYSESSIONPOOLS.plural);
  } catch {
    return false;
  }
}
