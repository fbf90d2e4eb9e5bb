import type { Logger } from "pino";
import {
  ANNOTATION_DEMANDED_AT,
  type Condition,
  type ConditionType,
  derivePhase,
  FAILURE_REASONS,
  FINALIZER,
  GROUP,
  getCondition,
  KIND,
  type LivySession,
  type LivySessionStatus,
  type Phase,
  PLURAL,
  parseDuration,
  type Reason,
  setCondition,
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
import type { Informer } from "../kube/informer.ts";
import type { LivyAuth, LivyClient } from "../livy/client.ts";
import { LivyHttpError, LivyTimeoutError, LivyUnreachableError, SessionGoneError } from "../livy/errors.ts";
import type { Session } from "../livy/protocol.ts";
import { isSessionTerminal, isSessionUsable, LIVY_MESSAGES } from "../livy/protocol.ts";
import { authFromSecret, type SecretLike } from "../livy/secret-auth.ts";
import { backoffDelay } from "../util/backoff.ts";
import { type OperatorConfig, serverUrl } from "./config.ts";
import type { EventRecorder } from "./events.ts";
import type { Metrics } from "./metrics.ts";
import {
  desiredConfigMap,
  desiredDeployment,
  desiredNetworkPolicy,
  desiredService,
  FIELD_MANAGER,
  LIVY_PORT,
  type OwnerRef,
  SESSION_LABEL,
  serverName,
  upToDate,
} from "./objects.ts";
import { type DeploymentLike, observeServer, type PodLike } from "./observe.ts";

export const LIVYSESSIONS: ResourceType = {
  group: GROUP,
  version: VERSION,
  plural: PLURAL,
  namespaced: true,
};

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export interface Caches {
  sessions: Informer<LivySession>;
  /** Only with --network-policy. */
  networkPolicies?: Informer<KubeObject>;
  deployments: Informer<KubeObject & DeploymentLike>;
  services: Informer<KubeObject>;
  configMaps: Informer<KubeObject>;
  pods: Informer<KubeObject & PodLike>;
}

export interface ReconcilerDeps {
  kube: KubeClient;
  caches: Caches;
  config: OperatorConfig;
  metrics: Metrics;
  events: EventRecorder;
  /** A Livy client per server URL and credentials (kept alive across passes). */
  livy(url: string, auth?: LivyAuth): LivyClient;
}

/** Reasons that need a new demand (annotation or spec change) before anything starts again. */
const SESSION_FAILURES = new Set(["SessionDead", "SessionLost"]);
/** Livy has no push: a starting session is polled this often (it starts once per demand, so it is cheap). */
const STARTING_POLL_MS = 100;
/** Server failures that may resolve by themselves while a pod waits: Recover waits for them until startupTimeout. */
const MAY_RESOLVE = new Set(["Unschedulable", "ImagePullFailed"]);

/** failurePolicy Recover's delay before restart n: 1 s, 2 s, 4 s, ... up to 5 min. */
const RECOVER_BACKOFF = { baseMs: 1_000, maxMs: 300_000 };

type Status = LivySessionStatus & { conditions: Condition[] };

/**
 * One pass of the LivySession lifecycle: read the world, take the next step, write status when it changed.
 * Level-triggered: every pass starts from the cached object and what the cluster and Livy report, so a
 * pass can be interrupted anywhere (operator killed) and the next one continues without duplicates:
 * owned objects have fixed names and are applied idempotently; the Livy session has a name derived from
 * the attempt and is adopted, not created twice.
 */
export class Reconciler {
  private readonly d: ReconcilerDeps;

  constructor(deps: ReconcilerDeps) {
    this.d = deps;
  }

  async reconcile(key: string, log: Logger): Promise<ReconcileResult> {
    const obj = this.d.caches.sessions.get(key);
    if (!obj?.metadata?.name || !obj.metadata.namespace || !obj.metadata.uid) return {};
    if (obj.metadata.deletionTimestamp) return await this.finalize(obj, log);
    let current = obj;
    if (!(obj.metadata.finalizers ?? []).includes(FINALIZER)) {
      await this.patchMeta(obj, { finalizers: [...(obj.metadata.finalizers ?? []), FINALIZER] });
      // go on with the object the API server returned rather than wait for the watch to bring it
      current = this.d.caches.sessions.get(key) ?? obj;
      if (!(current.metadata.finalizers ?? []).includes(FINALIZER)) return {};
    }
    const pass = new Pass(this.d, current, log);
    const result = await pass.run();
    await pass.commit();
    return result;
  }

  private async finalize(obj: LivySession, log: Logger): Promise<ReconcileResult> {
    if (!(obj.metadata.finalizers ?? []).includes(FINALIZER)) return {};
    const id = obj.status?.livySessionId;
    const url = obj.status?.serverURL;
    if (id !== undefined && id !== null && url) {
      // Before the server goes (garbage collection), so no Spark driver outlives it.
      const auth = await resolveAuth(this.d.kube, obj).catch(() => undefined);
      await deleteLivySession(this.d.livy(url, auth), id, this.d.config.livyRequestTimeoutMs, log);
    }
    await this.patchMeta(obj, {
      finalizers: (obj.metadata.finalizers ?? []).filter((f: string) => f !== FINALIZER),
    });
    log.info("finalized: Livy session deleted, owned objects left to garbage collection");
    return {};
  }

  private async patchMeta(obj: LivySession, meta: { finalizers: string[] }): Promise<void> {
    const path = resourcePath(LIVYSESSIONS, obj.metadata.namespace, obj.metadata.name);
    // resourceVersion makes it a compare-and-swap: a stale copy gets 409 and the key is retried
    try {
      const updated = await this.d.kube.mergePatch<LivySession>(path, {
        metadata: { finalizers: meta.finalizers, resourceVersion: obj.metadata.resourceVersion },
      });
      this.d.caches.sessions.setIfNewer(updated);
    } catch (err) {
      // gone already: the last finalizer went in an earlier pass and the cache had not caught up
      if (err instanceof KubeApiError && err.isNotFound) return;
      throw err;
    }
  }
}

/** The credentials of `spec.auth`, read from its Secret at each pass (so a rotated Secret is used at once). */
async function resolveAuth(kube: KubeClient, obj: LivySession): Promise<LivyAuth | undefined> {
  const auth = obj.spec.auth;
  if (!auth) return undefined;
  const secret = await kube.getOrNull<SecretLike>(
    resourcePath(CORE.secrets, obj.metadata.namespace, auth.secretName),
  );
  return authFromSecret(auth, secret);
}

/** A Livy session that will not take statements again. */
function isEnded(session: Session): boolean {
  return isSessionTerminal(session.state) || session.state === "shutting_down";
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
      "could not delete the Livy session; its server goes with the Deployment",
    );
  }
}

/** The state of one reconcile pass over one LivySession. */
class Pass {
  private readonly d: ReconcilerDeps;
  private readonly obj: LivySession;
  private readonly log: Logger;
  private readonly now = new Date();
  private readonly generation: number;
  private readonly owner: OwnerRef;
  private before: string;
  private beforePhase: Phase;
  st: Status;
  private auth: LivyAuth | undefined;

  constructor(d: ReconcilerDeps, obj: LivySession, log: Logger) {
    this.d = d;
    this.obj = obj;
    this.log = log;
    this.generation = obj.metadata.generation ?? 0;
    this.owner = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: KIND,
      name: obj.metadata.name,
      namespace: obj.metadata.namespace ?? "",
      uid: obj.metadata.uid ?? "",
    };
    const status = structuredClone(obj.status ?? {}) as Status;
    status.conditions ??= [];
    status.restarts ??= 0;
    this.st = status;
    this.before = JSON.stringify(obj.status ?? {});
    this.beforePhase = derivePhase(obj.status?.conditions, false);
  }

  private get spec() {
    return this.obj.spec;
  }

  private cond(type: string, status: "True" | "False" | "Unknown", reason: string, message = ""): void {
    this.st.conditions = setCondition(
      this.st.conditions,
      { type: type as ConditionType, status, reason: reason as Reason, message },
      this.generation,
      this.now,
    );
  }

  private nowIso(): string {
    return this.now.toISOString();
  }

  async run(): Promise<ReconcileResult> {
    const demandedAt = this.obj.metadata.annotations?.[ANNOTATION_DEMANDED_AT];
    const newAnnotation = demandedAt !== undefined && demandedAt !== this.st.demandedAt;
    if (newAnnotation) this.st.demandedAt = demandedAt;

    if (this.spec.suspend)
      return await this.park("Suspended", "spec.suspend is true: nothing runs until it is false");

    const idle = getCondition(this.st.conditions, "Idle");
    const ready = getCondition(this.st.conditions, "Ready");
    const parkedIdle = idle?.status === "True";
    const parkedFailed = ready?.status === "False" && FAILURE_REASONS.has(ready.reason);
    const parkedAt = parkedIdle
      ? idle?.observedGeneration
      : parkedFailed
        ? ready?.observedGeneration
        : undefined;
    const specChanged = parkedAt !== undefined && this.generation > parkedAt;
    if ((parkedIdle || parkedFailed) && !newAnnotation && !specChanged) {
      // Parked: keep the record as it is, make sure nothing runs.
      await this.teardown();
      return {};
    }
    if (parkedIdle || parkedFailed || !this.st.startTime) {
      this.startAttempt(
        parkedIdle || parkedFailed ? (newAnnotation ? "Demanded" : "SpecChanged") : "Created",
      );
    } else if (newAnnotation) {
      // a demand while running counts as activity: someone is about to use the session
      this.st.lastActivityTime = this.nowIso();
    }
    try {
      return await this.runDemanded();
    } catch (err) {
      // the same spec builds the same refused object: Failed until the spec changes, not a retry loop
      if (err instanceof DerivedObjectRefused) return await this.fail("InvalidSpec", err.message, "server");
      throw err;
    }
  }

  private startAttempt(why: string): void {
    this.log.info({ why }, "starting: deploying the Livy server");
    this.st.startTime = this.nowIso();
    this.st.restarts = 0;
    this.st.idleSince = undefined;
    this.st.readyTime = undefined;
    this.st.lastActivityTime = undefined;
    this.st.message = undefined;
    this.clearEndpoints();
    this.cond("Idle", "False", why === "Created" ? "Active" : why, "");
    this.cond("Ready", "False", "Starting", "deploying the Livy server");
  }

  private clearEndpoints(): void {
    this.st.serverURL = undefined;
    this.st.sessionURL = undefined;
    this.st.livySessionId = undefined;
    this.st.livySessionState = undefined;
  }

  private async runDemanded(): Promise<ReconcileResult> {
    const startMs = Date.parse(this.st.startTime ?? this.nowIso());
    if (startMs > this.now.getTime()) {
      // Recover's backoff: the next attempt begins at startTime
      return { requeueAfterMs: startMs - this.now.getTime() };
    }
    const startupMs = parseDuration(this.spec.startupTimeout);
    const startupLeft = startMs + startupMs - this.now.getTime();

    // 1. The server's objects, applied only when missing or changed.
    const cm = desiredConfigMap(this.owner, this.spec.server);
    const configHash = cm.metadata.annotations["livy.dev/spec-hash"] ?? "";
    const deployment = desiredDeployment(
      this.owner,
      this.spec.server,
      {
        image: this.d.config.defaultImage,
        imagePullPolicy: this.d.config.defaultImagePullPolicy,
        resources: this.d.config.defaultResources,
      },
      configHash,
    );
    const svc = desiredService(this.owner);
    const name = serverName(this.obj.metadata.name);
    const ns = this.owner.namespace;
    const caches = this.d.caches;
    // independent objects: applied together, so a cold start waits for one round trip, not four
    const policies = caches.networkPolicies;
    const [liveDeployment] = await Promise.all([
      this.ensure<KubeObject & DeploymentLike>(CORE.deployments, caches.deployments, deployment),
      this.ensure(CORE.configMaps, caches.configMaps, cm),
      this.ensure(CORE.services, caches.services, svc),
      this.d.config.networkPolicy && policies
        ? this.ensure(
            CORE.networkPolicies,
            policies,
            desiredNetworkPolicy(this.owner, this.d.config.networkPolicyOperatorNamespace),
          )
        : undefined,
    ]);

    // 2. The server.
    const pods = caches.pods
      .list()
      .filter(
        (p) => p.metadata?.namespace === ns && p.metadata?.labels?.[SESSION_LABEL] === this.obj.metadata.name,
      );
    const server = observeServer(liveDeployment, pods);
    this.log.debug(
      {
        server,
        deployment: {
          rv: liveDeployment?.metadata?.resourceVersion,
          generation: liveDeployment?.metadata?.generation,
          status: liveDeployment?.status,
        },
      },
      "observed the server",
    );
    if (server.state === "Failed") {
      const starting = this.st.livySessionId === undefined || this.st.livySessionId === null;
      if (this.spec.failurePolicy === "Recover" && starting && MAY_RESOLVE.has(server.reason)) {
        // Recover waits for what may still come (a node from the autoscaler, a pull that succeeds on the
        // kubelet's retry) until startupTimeout. Restarting at once deleted the pending pod each time, so
        // an autoscaler never saw it long enough to add a node, and the attempt never reached its deadline.
        const msg = `${server.reason}: ${server.message}`;
        if (startupLeft <= 0)
          return await this.fail(
            "StartupTimeout",
            `not Ready within ${this.spec.startupTimeout}: ${msg}`,
            "server",
          );
        this.cond("ServerReady", "False", server.reason, server.message);
        this.cond("SessionReady", "False", "WaitingForServer", "");
        this.cond("Ready", "False", "Starting", msg);
        this.st.message = msg;
        return { requeueAfterMs: Math.min(startupLeft, 30_000) };
      }
      return await this.fail(server.reason, server.message, "server");
    }
    if (server.state !== "Available") {
      const msg = server.state === "Progressing" ? server.message : `Deployment ${name}: ${server.state}`;
      if (this.st.livySessionId !== undefined && this.st.livySessionId !== null) {
        return await this.fail("ServerLost", `the Livy server went away (${msg})`, "server");
      }
      this.cond("ServerReady", "False", "Deploying", msg);
      this.cond("SessionReady", "False", "WaitingForServer", "");
      this.cond("Ready", "False", "Starting", msg);
      if (startupLeft <= 0)
        return await this.fail(
          "StartupTimeout",
          `not Ready within ${this.spec.startupTimeout}: ${msg}`,
          "server",
        );
      return { requeueAfterMs: Math.min(startupLeft, 30_000) };
    }
    this.cond("ServerReady", "True", "ServerAvailable", `Deployment ${name} is available`);

    // 3. The Livy session.
    const url = serverUrl(this.d.config.serverUrlTemplate, {
      name: this.obj.metadata.name,
      namespace: ns,
      service: name,
      port: LIVY_PORT,
    });
    this.st.serverURL = url;
    try {
      this.auth = await resolveAuth(this.d.kube, this.obj);
    } catch (err) {
      // a configuration problem the user fixes by creating or correcting the Secret: retry, not Failed
      const msg = err instanceof Error ? err.message : String(err);
      this.cond("SessionReady", "False", "AuthSecretInvalid", msg);
      this.cond("Ready", "False", "AuthSecretInvalid", msg);
      this.st.message = `AuthSecretInvalid: ${msg}`;
      return { requeueAfterMs: 5_000 };
    }
    const livy = this.d.livy(url, this.auth);
    const timeoutMs = this.d.config.livyRequestTimeoutMs;
    let session: Session;
    try {
      if (this.st.livySessionId === undefined || this.st.livySessionId === null) {
        session = await this.openSession(livy);
        this.st.livySessionId = session.id;
      } else {
        session = await livy.getSession(this.st.livySessionId, { timeoutMs });
      }
    } catch (err) {
      return await this.livyFailure(err, startupLeft);
    }
    this.st.livySessionState = session.state;
    this.st.sessionURL = `${url}/sessions/${session.id}`;
    if (isEnded(session)) return await this.sessionDead(session);
    if (!isSessionUsable(session.state)) {
      this.cond("SessionReady", "False", "SessionStarting", `Livy session ${session.id} is ${session.state}`);
      this.cond("Ready", "False", "Starting", `Livy session ${session.id} is ${session.state}`);
      if (startupLeft <= 0)
        return await this.fail(
          "StartupTimeout",
          `Livy session not idle within ${this.spec.startupTimeout} (still ${session.state})`,
          "session",
        );
      return { requeueAfterMs: Math.min(STARTING_POLL_MS, startupLeft) };
    }

    // 4. Ready: endpoints, activity, idle deadline.
    const wasReady = getCondition(this.st.conditions, "Ready")?.status === "True";
    this.cond(
      "SessionReady",
      "True",
      session.state === "busy" ? "SessionBusy" : "SessionIdle",
      `Livy session ${session.id} is ${session.state}`,
    );
    this.cond(
      "Ready",
      "True",
      "Ready",
      `Livy session ${session.id} accepts statements at ${this.st.sessionURL}`,
    );
    if (!wasReady) {
      this.st.readyTime = this.nowIso();
      this.st.message = undefined;
      this.d.metrics.demandToReady.observe((this.now.getTime() - startMs) / 1000);
    }
    let busy = session.state === "busy";
    let latest = 0;
    try {
      const list = await livy.listStatements(session.id, { order: "desc", size: 1, timeoutMs });
      const s = list.statements[0];
      if (s) {
        latest = Math.max(s.started ?? 0, s.completed ?? 0);
        if (s.state === "waiting" || s.state === "running" || s.state === "cancelling") busy = true;
      }
    } catch (err) {
      // the session may have died between the two reads: then that is the failure to report
      const again = await livy.getSession(session.id, { timeoutMs }).catch(() => null);
      if (again && isEnded(again)) return await this.sessionDead(again);
      return await this.livyFailure(err, startupLeft);
    }
    const lastKnown = Date.parse(this.st.lastActivityTime ?? this.st.readyTime ?? this.nowIso());
    const activity = busy ? this.now.getTime() : Math.max(lastKnown, latest);
    if (activity > lastKnown || !this.st.lastActivityTime)
      this.st.lastActivityTime = new Date(activity).toISOString();
    const idleMs = parseDuration(this.spec.idleTimeout);
    const poll = this.d.config.sessionPollIntervalMs;
    if (idleMs <= 0 || busy) return { requeueAfterMs: poll };
    const deadline = Date.parse(this.st.lastActivityTime) + idleMs;
    if (deadline <= this.now.getTime()) {
      this.d.metrics.idleTeardowns.inc();
      return await this.park("IdleTimeout", this.idleMessage());
    }
    return { requeueAfterMs: Math.min(poll, deadline - this.now.getTime()) };
  }

  private idleMessage(): string {
    return `no activity for ${this.spec.idleTimeout}: the Livy server was removed; set annotation ${ANNOTATION_DEMANDED_AT} (livyctl wake) to start it again`;
  }

  /** Ready once, and by the activity recorded in status, past the idle deadline. */
  private idleDeadlinePassed(): boolean {
    const idleMs = parseDuration(this.spec.idleTimeout);
    const last = Date.parse(this.st.lastActivityTime ?? this.st.readyTime ?? "");
    return (
      Boolean(this.st.readyTime) && idleMs > 0 && Number.isFinite(last) && last + idleMs <= this.now.getTime()
    );
  }

  private async sessionDead(session: Session): Promise<ReconcileResult> {
    this.st.livySessionState = session.state;
    const tail = (session.log ?? []).slice(-5).join("\n");
    return await this.fail(
      "SessionDead",
      `Livy session ${session.id} is ${session.state}${tail ? `; last log lines:\n${tail}` : ""}`,
      "session",
    );
  }

  /** Creates the attempt's Livy session, or adopts it if a previous pass created it and then crashed. */
  private async openSession(livy: LivyClient): Promise<Session> {
    const timeoutMs = this.d.config.livyRequestTimeoutMs;
    const name = this.livySessionName();
    const existing = await livy.findSessionByName(name, { timeoutMs });
    if (existing) {
      // a pass that crashed after its POST: adopt it (a dead one then goes to the failure policy)
      this.log.info(
        { livySessionId: existing.id, state: existing.state },
        "adopted the Livy session of this attempt",
      );
      return existing;
    }
    // Persist the attempt first: the name derives from it, so a crash after the POST is adopted later.
    if (this.obj.status?.startTime !== this.st.startTime) await this.commit();
    const body = { ...this.spec.session, kind: this.spec.kind, name };
    const created = await livy.createSession(body, { timeoutMs });
    this.log.info({ livySessionId: created.id, name }, "created Livy session");
    void this.d.events.record(
      this.target(),
      "Normal",
      "SessionCreated",
      `Livy session ${created.id} created at ${this.st.serverURL}`,
    );
    return created;
  }

  /** Unique per LivySession, attempt and restart; Livy refuses duplicate names, which guards us too. */
  private livySessionName(): string {
    const attempt = Date.parse(this.st.startTime ?? "0").toString(36);
    return `${this.obj.metadata.namespace}.${this.obj.metadata.name}.${attempt}.${this.st.restarts ?? 0}`;
  }

  private async livyFailure(err: unknown, startupLeft: number): Promise<ReconcileResult> {
    const everReady = Boolean(this.st.readyTime);
    if (err instanceof SessionGoneError || (err instanceof LivyHttpError && err.status === 404)) {
      // An idle teardown cut short (operator killed after deleting the Livy session, before recording
      // it): the session is gone because we removed it, so finish the teardown instead of failing.
      if (this.idleDeadlinePassed()) {
        this.d.metrics.idleTeardowns.inc();
        return await this.park("IdleTimeout", this.idleMessage());
      }
      return await this.fail(
        "SessionLost",
        `Livy session ${this.st.livySessionId} no longer exists on ${this.st.serverURL}`,
        "session",
      );
    }
    const msg = err instanceof Error ? err.message : String(err);
    if (everReady) {
      // a session that was Ready and now cannot be read: the failure policy decides, no silent retries
      const unreachable = err instanceof LivyUnreachableError || err instanceof LivyTimeoutError;
      return await this.fail(
        unreachable ? "LivyUnreachable" : "LivyError",
        unreachable ? `the Livy server stopped answering: ${msg}` : `Livy answered with an error: ${msg}`,
        "server",
      );
    }
    if (
      err instanceof LivyHttpError &&
      err.status === 400 &&
      LIVY_MESSAGES.tooManySessions.test(err.msg) &&
      startupLeft > 0
    ) {
      this.cond("Ready", "False", "Starting", `Livy is busy creating sessions: ${msg}`);
      return { requeueAfterMs: Math.min(1_000, startupLeft) };
    }
    if (startupLeft <= 0)
      return await this.fail(
        "StartupTimeout",
        `Livy not usable within ${this.spec.startupTimeout}: ${msg}`,
        "server",
      );
    this.cond(
      "SessionReady",
      "False",
      err instanceof LivyUnreachableError ? "LivyUnreachable" : "LivyError",
      msg,
    );
    this.cond("Ready", "False", "Starting", msg);
    // before Ready, a server that does not answer yet is starting: retry soon, bounded by startupTimeout
    return { requeueAfterMs: Math.min(1_000, startupLeft) };
  }

  /**
   * FailFast: Failed with the reason, server removed, nothing retried until a new demand.
   * Recover: restart (the session, or the whole server) with exponential backoff, up to maxRestarts.
   */
  private async fail(reason: string, message: string, scope: "server" | "session"): Promise<ReconcileResult> {
    const restarts = this.st.restarts ?? 0;
    const max = this.spec.maxRestarts;
    // an invalid spec fails the same way on every attempt: no restart
    const recoverable = reason !== "InvalidSpec";
    if (this.spec.failurePolicy === "Recover" && recoverable && (max === undefined || restarts < max)) {
      const backoffMs = backoffDelay(RECOVER_BACKOFF, restarts);
      this.st.restarts = restarts + 1;
      this.log.warn({ reason, restarts: this.st.restarts, backoffMs }, `recovering: ${message}`);
      this.cond(
        "Ready",
        "False",
        "Recovering",
        `${reason}: ${message}; restart ${this.st.restarts} in ${Math.round(backoffMs / 1000)}s`,
      );
      this.cond("SessionReady", "False", reason, message);
      this.st.message = `${reason}: ${message}`;
      void this.d.events.record(this.target(), "Warning", reason, `${message} (restart ${this.st.restarts})`);
      await this.deleteCurrentSession();
      if (scope === "server" || !SESSION_FAILURES.has(reason)) {
        await this.deleteServer();
        this.cond("ServerReady", "False", reason, message);
        this.st.startTime = new Date(this.now.getTime() + backoffMs).toISOString();
      } else {
        // a new session on the same server: the startup deadline starts again
        this.st.startTime = new Date(this.now.getTime() + backoffMs).toISOString();
      }
      this.st.readyTime = undefined;
      this.st.livySessionId = undefined;
      this.st.livySessionState = undefined;
      this.st.sessionURL = undefined;
      return { requeueAfterMs: backoffMs };
    }
    const gaveUp = this.spec.failurePolicy === "Recover" && recoverable;
    const finalReason = gaveUp ? "RestartLimitReached" : reason;
    const finalMessage = gaveUp ? `${restarts} restarts, then ${reason}: ${message}` : message;
    this.log.warn({ reason: finalReason }, `failed: ${finalMessage}`);
    await this.deleteCurrentSession();
    await this.deleteServer();
    this.cond(scope === "server" ? "ServerReady" : "SessionReady", "False", reason, message);
    this.cond("Ready", "False", finalReason, finalMessage);
    this.st.message = `${finalReason}: ${finalMessage}`;
    const failedState = this.st.livySessionState;
    this.clearEndpoints();
    if (failedState) this.st.livySessionState = failedState;
    return {};
  }

  /** Suspended or idle: no server, no Livy session, the resource and its record stay. */
  private async park(reason: "Suspended" | "IdleTimeout", message: string): Promise<ReconcileResult> {
    // In this order, so that an operator killed anywhere in between finishes the job on restart: the Livy
    // session (its id is in status until the commit), then the record, then the server. Killed after the
    // first step, the next pass finds the Livy session gone past the idle deadline and parks (livyFailure);
    // after the second, it finds the resource parked and removes the server. Removing the server first
    // made the next pass read the half-removed server as ServerLost/SessionLost and fail the resource.
    await this.deleteCurrentSession();
    const wasParked = getCondition(this.st.conditions, "Idle")?.status === "True";
    if (!wasParked || getCondition(this.st.conditions, "Idle")?.reason !== reason)
      this.st.idleSince = this.nowIso();
    this.clearEndpoints();
    this.cond("Idle", "True", reason, message);
    this.cond("Ready", "False", reason, message);
    this.cond("ServerReady", "False", reason, "");
    this.cond("SessionReady", "False", reason, "");
    this.st.message = undefined;
    await this.commit();
    await this.deleteServer();
    return {};
  }

  private async teardown(): Promise<void> {
    await this.deleteCurrentSession();
    await this.deleteServer();
  }

  private async deleteCurrentSession(): Promise<void> {
    const id = this.st.livySessionId;
    if (id === undefined || id === null || !this.st.serverURL) return;
    const auth = this.auth ?? (await resolveAuth(this.d.kube, this.obj).catch(() => undefined));
    await deleteLivySession(
      this.d.livy(this.st.serverURL, auth),
      id,
      this.d.config.livyRequestTimeoutMs,
      this.log,
    );
  }

  private async deleteServer(): Promise<void> {
    const ns = this.owner.namespace;
    const name = serverName(this.obj.metadata.name);
    const k = `${ns}/${name}`;
    const c = this.d.caches;
    const owned: Array<[ResourceType, Informer<KubeObject>]> = [
      [CORE.deployments, c.deployments],
      [CORE.services, c.services],
      [CORE.configMaps, c.configMaps],
      ...(c.networkPolicies
        ? [[CORE.networkPolicies, c.networkPolicies] as [ResourceType, Informer<KubeObject>]]
        : []),
    ];
    for (const [rt, inf] of owned) {
      const live = inf.get(k);
      if (!live || live.metadata?.deletionTimestamp) continue;
      await this.d.kube.delete(resourcePath(rt, ns, name));
    }
  }

  /** Applies `desired` when the cache holds no object of that name or one from another spec. */
  private async ensure<T extends KubeObject>(
    rt: ResourceType,
    inf: Informer<KubeObject>,
    desired: { metadata: { name: string; namespace: string; annotations: Record<string, string> } },
  ): Promise<T | undefined> {
    const live = inf.get(`${desired.metadata.namespace}/${desired.metadata.name}`);
    if (live && !live.metadata?.deletionTimestamp && upToDate(live, desired)) return live as T;
    if (live?.metadata?.deletionTimestamp) return live as T; // being deleted: wait for it to go
    let applied: T;
    try {
      applied = await this.d.kube.apply<T>(
        resourcePath(rt, desired.metadata.namespace, desired.metadata.name),
        desired,
        FIELD_MANAGER,
      );
    } catch (err) {
      // 422: the object built from the spec is invalid (a spec the CRD admits, e.g. pod annotations over
      // the 256 KiB total, or a request above its limit)
      if (err instanceof KubeApiError && err.status === 422)
        throw new DerivedObjectRefused(
          `the API server refused the ${rt.plural} object built from this spec: ${err.message}`,
        );
      throw err;
    }
    inf.setIfNewer(applied);
    return applied;
  }

  private target() {
    return {
      apiVersion: this.owner.apiVersion,
      kind: this.owner.kind,
      name: this.owner.name,
      namespace: this.owner.namespace,
      uid: this.owner.uid,
      resourceVersion: this.obj.metadata.resourceVersion,
    };
  }

  /** Writes status through the status subresource, only when it changed; records an event per phase change. */
  async commit(): Promise<void> {
    this.st.observedGeneration = this.generation;
    const phase = derivePhase(this.st.conditions, false);
    this.st.phase = phase;
    const next = prune(this.st);
    if (JSON.stringify(next) === this.before) return;
    const patch: Record<string, unknown> = { ...next };
    for (const k of Object.keys(this.obj.status ?? {})) if (!(k in next)) patch[k] = null;
    const path = resourcePath(LIVYSESSIONS, this.obj.metadata.namespace, this.obj.metadata.name, "status");
    try {
      const updated = await this.d.kube.mergePatch<LivySession>(path, { status: patch });
      this.d.caches.sessions.setIfNewer(updated);
      this.before = JSON.stringify(prune(updated.status ?? {}));
    } catch (err) {
      if (err instanceof KubeApiError && err.isNotFound) return;
      throw err;
    }
    if (phase !== this.beforePhase) {
      const ready = getCondition(this.st.conditions, "Ready");
      const warning = phase === "Failed" || ready?.reason === "Recovering";
      void this.d.events.record(
        this.target(),
        warning ? "Warning" : "Normal",
        phase,
        ready?.message || `phase ${phase}`,
      );
      this.log.info(
        { phase, from: this.beforePhase, reason: ready?.reason },
        `phase ${this.beforePhase} -> ${phase}`,
      );
      this.beforePhase = phase;
    }
  }
}

/** An object built from the spec was refused by the API server as invalid (HTTP 422). */
class DerivedObjectRefused extends Error {
  override name = "DerivedObjectRefused";
}

/** Drops undefined fields so that comparison and the merge patch see only what is set. */
function prune<T extends object>(o: T): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null) out[k] = v;
  return out;
}
