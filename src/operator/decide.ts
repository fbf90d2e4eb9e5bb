/**
 * The LivySession lifecycle as a pure function: `decide(observation)` returns what to do next, or asks
 * for Livy's answers first. No I/O, no clock, no randomness: everything comes in through the Observation,
 * so each transition is unit-tested by calling it (test/unit/operator-decide.test.ts), as kubebuilder's
 * tests call Reconcile.
 *
 * Level-triggered: every step starts from the stored status and what the cluster and Livy report, so a pass
 * can stop anywhere (operator killed) and the next one continues without duplicates: owned objects have
 * fixed names and are applied idempotently; the Livy session is named after the attempt and adopted, not
 * created twice.
 */

import {
  ANNOTATION_DEMANDED_AT,
  type Condition,
  type ConditionStatus,
  ConditionType,
  demandToken,
  derivePhase,
  FINALIZER,
  GROUP,
  getCondition,
  isFailureReason,
  KIND,
  type LivySessionStatus,
  type Phase,
  parseDuration,
  Reason,
  STATUS_LIMITS,
  setCondition,
  truncate,
  VERSION,
  warmupCode,
} from "../api/index.ts";
import type { LivyAuth } from "../livy/client.ts";
import type { Session, Statement } from "../livy/protocol.ts";
import { isSessionTerminal, isSessionUsable, isStatementDone } from "../livy/protocol.ts";
import { backoffDelay, seededRandom } from "../util/backoff.ts";
import { serverUrl } from "./config.ts";
import { withBuiltInSessionConf, withServerDefaults, withSessionDefaults } from "./defaults.ts";
import {
  CREDENTIAL_HASH_ANNOTATION,
  desiredConfigMap,
  desiredCredentialSecret,
  desiredDeployment,
  desiredNetworkPolicy,
  desiredRoleBinding,
  desiredService,
  desiredServiceAccount,
  hashOf,
  LIVY_PORT,
  type OwnerRef,
  ownsDriverIdentity,
  SPEC_HASH_ANNOTATION,
  serverIdOf,
  serverName,
  upToDate,
} from "./objects.ts";
import { observeServer, type ServerObservation, serverPodLost } from "./observe.ts";
import {
  type Decision,
  type DesiredObject,
  type LivyAnswer,
  type LivyFailure,
  type Observation,
  OWNED_KINDS,
  type OwnedKind,
  type Plan,
  type PlannedEvent,
  type PoolObservation,
} from "./plan.ts";
import { CLAIMED_BY_LABEL, claimedBy, pickServer } from "./pool.ts";
import { SPARK_UI_PORT, sparkConf } from "./spark.ts";

/** The largest session id status.livySessionId holds (int32, as Livy's own ids). */
const MAX_SESSION_ID = 2_147_483_647;
/** What a SessionDead message quotes of the Livy session's log. */
const LOG_TAIL_LINES = 5;
const LOG_LINE_CHARS = 300;
/**
 * Livy has no push: a starting session is polled this often, to see it idle within ~5 ms of becoming so on
 * average (at 100 ms the operator learnt it 50 ms late, half of what it added to a cold start; at 20 ms 10
 * ms, the largest part left of its "Livy idle → Ready" once the warm-up went out at once). It starts once
 * per demand, and the poll is one small GET; STARTING_POLLS_PER_SECOND bounds all of them together, so a
 * few starting at once are polled this often and many no more often in total than before.
 */
export const STARTING_POLL_MS = 10;
/**
 * All starting sessions together are polled at most this often per second: a thousand starting at once are
 * polled every 2 s each rather than flooding one shared Livy (and the operator's CPU) with 50,000 GETs/s.
 */
export const STARTING_POLLS_PER_SECOND = 500;

/** How long a starting Livy session waits for its next look, with `starting` sessions starting at once. */
export function startingPollMs(starting: number, pollIntervalMs: number): number {
  const spread = Math.ceil((Math.max(1, starting) * 1000) / STARTING_POLLS_PER_SECOND);
  return Math.max(STARTING_POLL_MS, Math.min(spread, Math.max(STARTING_POLL_MS, pollIntervalMs)));
}
/**
 * All Ready sessions together are polled at most this often per second (the Livy session's state and
 * activity, for the idle deadline and a dead session): up to 1000 Ready, each every sessionPollIntervalMs
 * (5 s); 10,000 Ready every 50 s each. At 5 s, 10,000 asked for 2000 passes a second of an operator on two
 * cores doing 15 under a loaded API server (bench/RESULTS.md 20.1). An idle deadline is still met on time
 * (the next look is scheduled at it), and a dead pod is seen by its watch, not by this poll.
 */
export const SERVING_POLLS_PER_SECOND = 200;

/** How long a Ready session waits for its next poll, with `serving` sessions Ready. */
export function servingPollMs(serving: number, pollIntervalMs: number): number {
  return Math.max(pollIntervalMs, Math.ceil((Math.max(1, serving) * 1000) / SERVING_POLLS_PER_SECOND));
}
/** How long a step waits at most before looking again while something starts. */
const STARTING_RECHECK_MS = 30_000;
/** The auth Secret is read again this often while it is missing or incomplete. */
const AUTH_RECHECK_MS = 5_000;
/** A deletion waits this long at most for Livy to confirm its session gone. */
export const FINALIZE_GIVE_UP_MS = 10 * 60_000;
/** Between tries to delete the Livy session of a LivySession being deleted. */
const FINALIZE_BACKOFF = { baseMs: 1_000, maxMs: 60_000 };
/** failurePolicy Recover's delay before restart n: 1 s, 2 s, 4 s, ... up to 5 min. */
export const RECOVER_BACKOFF = { baseMs: 1_000, maxMs: 300_000 };
/** Reasons after which Recover opens a new Livy session on the same server. */
const SESSION_FAILURES: ReadonlySet<string> = new Set([
  Reason.SessionDead,
  Reason.SessionLost,
  Reason.WarmupFailed,
]);
/** Server failures that may resolve by themselves while a pod waits: Recover waits for them until startupTimeout. */
const MAY_RESOLVE: ReadonlySet<string> = new Set([Reason.Unschedulable, Reason.ImagePullFailed]);

type Status = LivySessionStatus & { conditions: Condition[] };
type Scope = "server" | "session";

export function decide(o: Observation): Decision {
  const meta = o.resource.metadata;
  const claimant = o.owned.deployment?.metadata?.labels?.[CLAIMED_BY_LABEL];
  if (claimant !== undefined && claimant !== meta.uid) {
    // A pooled LivySession whose server was handed over (docs/warm-pool.md): the server, its Livy session
    // and its objects are another LivySession's now. Nothing here may touch them, not even the deletion
    // that follows (its finalizer would delete the Livy session the other one uses).
    const finalizing = meta.deletionTimestamp && (meta.finalizers ?? []).includes(FINALIZER);
    return { plan: finalizing ? { finalizer: "remove" } : {} };
  }
  if (meta.deletionTimestamp) {
    if (!(meta.finalizers ?? []).includes(FINALIZER)) return { plan: {} };
    return new Step(o).finalize();
  }
  if (!(meta.finalizers ?? []).includes(FINALIZER)) {
    // A new LivySession: its server's objects are applied together with the finalizer, one round trip
    // instead of two (nothing needs finalizing before a Livy session exists, and the objects' owner
    // references let garbage collection remove them if it goes first). Anything else waits for the finalizer.
    const next = new Step({
      ...o,
      resource: { ...o.resource, metadata: { ...meta, finalizers: [...(meta.finalizers ?? []), FINALIZER] } },
    }).run();
    const apply =
      "plan" in next && Object.keys(next.plan).join() === "apply,requeueAfterMs" ? next.plan.apply : [];
    return { plan: { finalizer: "add", ...(apply?.length ? { apply } : {}), requeueAfterMs: 0 } };
  }
  return new Step(o).run();
}

/** A pooled LivySession's status that names a Ready Livy session: what a hand-over copies. */
function isWarmRecord(st: LivySessionStatus): boolean {
  return (
    getCondition(st.conditions, ConditionType.Ready)?.status === "True" &&
    st.livySessionId !== undefined &&
    st.livySessionId !== null &&
    Boolean(st.serverURL) &&
    Boolean(st.sessionURL)
  );
}

function authOf(o: Observation): LivyAuth | undefined {
  return o.auth.state === "ok" ? o.auth.auth : undefined;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** One decision over one LivySession: the status it builds and the plan it returns. */
class Step {
  private readonly o: Observation;
  private readonly now: number;
  private readonly generation: number;
  /** The LivySession as owner of its server's objects, without the server id (see `owner`). */
  private readonly base: OwnerRef;
  private readonly st: Status;
  private readonly beforePhase: Phase;
  private readonly plan: Plan = {};

  constructor(o: Observation) {
    this.o = o;
    this.now = o.now;
    const meta = o.resource.metadata;
    this.generation = meta.generation ?? 0;
    this.base = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: KIND,
      name: meta.name,
      namespace: meta.namespace ?? "",
      uid: meta.uid ?? "",
    };
    const status = structuredClone(o.resource.status ?? {}) as Status;
    status.conditions ??= [];
    status.restarts ??= 0;
    this.st = status;
    this.beforePhase = derivePhase(o.resource.status?.conditions, false);
  }

  /** The owner of the server's objects, named by the server in use (status.server: a pooled one taken over). */
  private get owner(): OwnerRef {
    return this.st.server ? { ...this.base, server: this.st.server } : this.base;
  }

  /** What the server's objects and its Livy sessions are named by (a pooled server keeps its id). */
  private get serverId(): string {
    return serverIdOf(this.owner);
  }

  private get spec() {
    return this.o.resource.spec;
  }

  private cond(type: ConditionType, status: ConditionStatus, reason: Reason, message = ""): void {
    this.st.conditions = setCondition(
      this.st.conditions,
      { type, status, reason, message },
      this.generation,
      new Date(this.now),
    );
  }

  private log(level: "debug" | "info" | "warn", msg: string, fields?: Record<string, unknown>): void {
    this.plan.log = [...(this.plan.log ?? []), { level, msg, ...(fields ? { fields } : {}) }];
  }

  private event(type: PlannedEvent["type"], reason: string, message: string): void {
    this.plan.events = [...(this.plan.events ?? []), { type, reason, message }];
  }

  /** The plan with the next status and the phase-change event; `requeueAfterMs` as given. */
  private done(requeueAfterMs?: number): Decision {
    this.st.observedGeneration = this.generation;
    bound(this.st);
    const phase = derivePhase(this.st.conditions, false);
    this.st.phase = phase;
    this.plan.status = this.st;
    if (phase !== this.beforePhase) {
      const ready = getCondition(this.st.conditions, ConditionType.Ready);
      const warning = phase === "Failed" || ready?.reason === Reason.Recovering;
      this.event(warning ? "Warning" : "Normal", phase, ready?.message || `phase ${phase}`);
      this.log("info", `phase ${this.beforePhase} -> ${phase}`, {
        phase,
        from: this.beforePhase,
        reason: ready?.reason,
      });
    }
    if (requeueAfterMs !== undefined) this.plan.requeueAfterMs = Math.max(0, requeueAfterMs);
    return { plan: this.plan };
  }

  /**
   * Deletion: the Livy session first (so no Spark driver outlives its server), then the finalizer goes and
   * garbage collection removes the owned objects. The finalizer stays while Livy cannot confirm the session
   * gone, retried with backoff and said in an event and the Ready condition, unless nothing could hold a
   * driver any more (the server gone) or the deletion has waited FINALIZE_GIVE_UP_MS.
   */
  finalize(): Decision {
    const id = this.st.livySessionId;
    const url = this.st.serverURL;
    const done = (why: string): Decision => {
      this.log("info", `finalized: ${why}; owned objects left to garbage collection`);
      return { plan: { ...this.plan, finalizer: "remove", memory: {} } };
    };
    const byName = id === undefined || id === null;
    if (!url || (byName && !this.st.startTime)) return done("no Livy session");
    const livy = this.o.livy;
    if (!livy)
      return {
        observe: {
          url,
          auth: authOf(this.o),
          // no id recorded: the attempt's session, if its creation came before the record of it
          ...(byName ? { sessionName: this.livySessionName() } : { sessionId: id }),
          activity: false,
          owner: { namespace: this.owner.namespace, name: this.serverId },
        },
      };
    if (livy.session.ok && livy.session.value === null) return done("no Livy session");
    const found = livy.session.ok ? livy.session.value : null;
    const label = found?.id ?? id ?? this.livySessionName();
    if (!livy.session.ok && livy.session.error.kind === "gone") return done(`Livy session ${label} deleted`);
    const remove = () => {
      if (found) this.plan.deleteLivySession = { url, id: found.id, auth: authOf(this.o) };
    };
    const attempts = this.o.memory.deleteAttempts ?? 0;
    if (livy.session.ok && attempts === 0) {
      // there: delete it, then look again
      remove();
      return { plan: { ...this.plan, memory: { deleteAttempts: 1 }, requeueAfterMs: 0 } };
    }
    const why = livy.session.ok
      ? `Livy still lists Livy session ${label} after it was deleted`
      : `could not ask Livy about Livy session ${label}: ${quote(livy.session.error.message)}`;
    const live = this.o.pods.filter((p) => !p.metadata?.deletionTimestamp);
    if (!this.o.owned.deployment && live.length === 0)
      return done(`the Livy server is gone, and session ${label} with it (${why})`);
    // No id recorded (the attempt's record names the server from its first write, before the server is up)
    // and a server that neither answers nor has an available pod: whatever it holds goes with its pod, and
    // a deletion while the pod cannot start does not wait FINALIZE_GIVE_UP_MS for a Livy that never came.
    const silent = !livy.session.ok && ["unreachable", "timeout"].includes(livy.session.error.kind);
    if (byName && silent && observeServer(this.o.owned.deployment, this.o.pods).state !== "Available")
      return done(`the Livy server has no available pod (${why}); what it holds ends with it`);
    const waitedMs = this.now - Date.parse(String(this.o.resource.metadata.deletionTimestamp));
    if (waitedMs >= FINALIZE_GIVE_UP_MS) {
      const msg = `gave up deleting Livy session ${label} after ${Math.round(waitedMs / 60_000)} min: ${why}; it ends with its server`;
      this.event("Warning", "LivySessionAbandoned", msg);
      return done(msg);
    }
    const retryMs = backoffDelay(
      { ...FINALIZE_BACKOFF, jitter: 0.5 },
      Math.max(0, attempts - (livy.session.ok ? 1 : 0)),
      () => seededRandom(`${this.owner.uid}/${attempts}`),
    );
    const msg = `${why}; the LivySession is deleted once it is gone (next try in ${Math.ceil(retryMs / 1000)}s)`;
    this.event("Warning", "LivySessionNotDeleted", msg);
    this.cond(ConditionType.Ready, "False", Reason.Deleting, msg);
    this.st.message = `Deleting: ${msg}`;
    remove();
    this.plan.memory = { deleteAttempts: attempts + 1 };
    this.st.observedGeneration = this.generation;
    this.st.phase = derivePhase(this.st.conditions, true);
    bound(this.st);
    this.plan.status = this.st;
    this.plan.requeueAfterMs = retryMs;
    return { plan: this.plan };
  }

  run(): Decision {
    // recorded as a digest when longer than status.demandedAt allows (annotations have no bound)
    const annotation = this.o.resource.metadata.annotations?.[ANNOTATION_DEMANDED_AT];
    const demandedAt = annotation === undefined ? undefined : demandToken(annotation);
    const newAnnotation = demandedAt !== undefined && demandedAt !== this.st.demandedAt;
    if (newAnnotation) this.st.demandedAt = demandedAt;

    if (this.spec.suspend)
      return this.park(Reason.Suspended, "spec.suspend is true: nothing runs until it is false");

    const idle = getCondition(this.st.conditions, ConditionType.Idle);
    const ready = getCondition(this.st.conditions, ConditionType.Ready);
    const parkedIdle = idle?.status === "True";
    const parkedFailed = ready?.status === "False" && isFailureReason(ready.reason);
    const parkedAt = parkedIdle
      ? idle?.observedGeneration
      : parkedFailed
        ? ready?.observedGeneration
        : undefined;
    const specChanged = parkedAt !== undefined && this.generation > parkedAt;
    if ((parkedIdle || parkedFailed) && !newAnnotation && !specChanged) {
      // Parked: keep the record as it is, make sure nothing runs.
      this.teardown(parkedIdle);
      return { plan: this.plan };
    }
    if (this.o.handedFrom && !this.o.handedFrom.deleting) this.plan.deletePooled = this.o.handedFrom.name;
    if (parkedIdle || parkedFailed || !this.st.startTime) {
      const why =
        parkedIdle || parkedFailed ? (newAnnotation ? Reason.Demanded : Reason.SpecChanged) : Reason.Active;
      const pooled = this.fromPool(why);
      if (pooled) return pooled;
      const had = this.st.server;
      this.startAttempt(why);
      // the LivySession's own server from now on: the next step observes its objects, not the pooled one's
      if (had) return this.done(0);
    } else if (newAnnotation) {
      // a demand while running counts as activity: someone is about to use the session
      this.st.lastActivityTime = iso(this.now);
    }
    // the same spec builds the same refused object: Failed until the spec changes, not a retry loop
    if (this.o.refused !== undefined) return this.fail(Reason.InvalidSpec, quote(this.o.refused), "server");
    return this.runDemanded();
  }

  private startAttempt(why: Reason): void {
    this.log("info", "starting: deploying the Livy server", { why });
    this.st.startTime = iso(this.now);
    this.st.restarts = 0;
    this.st.idleSince = undefined;
    this.st.readyTime = undefined;
    this.st.lastActivityTime = undefined;
    this.st.message = undefined;
    this.st.server = undefined;
    this.st.serverUID = undefined;
    this.clearEndpoints();
    this.cond(ConditionType.Idle, "False", why, "");
    this.cond(ConditionType.Ready, "False", Reason.Starting, "deploying the Livy server");
  }

  /**
   * A start served by a warm pool (docs/warm-pool.md): the server already handed to this LivySession (a
   * hand-over interrupted after its claim) is recorded; else a warm free one is claimed, and the next step
   * records it. undefined: no warm server (or no pool): the LivySession starts its own.
   */
  private fromPool(why: Reason): Decision | undefined {
    const pool = this.o.pool;
    if (!pool) return undefined;
    const mine = claimedBy(pool.servers, this.base.uid);
    if (mine) return this.handOver(pool, mine.id, why);
    const pick = pickServer(pool.servers, this.base.uid);
    const member = pick ? pool.members[pick.id] : undefined;
    if (!pick || !member?.deploymentVersion || !isWarmRecord(member.status)) return undefined;
    const deployment = this.desired({ ...this.base, server: pick.id }).find((d) => d.kind === "deployment");
    this.log("info", `taking the warm Livy server livy-${pick.id} of LivySessionPool ${pool.name}`, {
      why,
    });
    return {
      plan: {
        log: this.plan.log ?? [],
        claim: {
          server: pick.id,
          pool: pool.name,
          resourceVersion: member.deploymentVersion,
          owner: this.base,
          specHash: deployment?.object.metadata.annotations[SPEC_HASH_ANNOTATION] ?? "",
        },
        requeueAfterMs: 0,
      },
    };
  }

  /**
   * The hand-over's record: the server's other objects become this LivySession's (before the status names
   * the server, so that deleting the pooled LivySession never takes them), the status says Ready with the
   * pooled Livy session's endpoints (it ran its warm-up), and the pooled LivySession goes.
   */
  private handOver(pool: PoolObservation, id: string, why: Reason): Decision | undefined {
    const member = pool.members[id];
    if (!member || !isWarmRecord(member.status)) return undefined;
    const m = member.status;
    const owner: OwnerRef = { ...this.base, server: id };
    const desired = this.desired(owner);
    const hashOfKind = (kind: string) =>
      desired.find((d) => d.kind === kind)?.object.metadata.annotations[SPEC_HASH_ANNOTATION];
    this.plan.adopt = {
      server: id,
      owner: this.base,
      objects: [
        ...member.owned
          .filter((k) => k !== "deployment")
          .map((kind) => ({ kind, specHash: hashOfKind(kind) })),
        ...(member.credential ? [{ kind: "credential" as const }] : []),
      ],
    };
    this.plan.deletePooled = id;
    const now = iso(this.now);
    this.st.startTime = now;
    this.st.readyTime = now;
    this.st.restarts = 0;
    this.st.idleSince = undefined;
    this.st.lastActivityTime = undefined;
    this.st.message = undefined;
    this.st.server = id;
    this.st.serverUID = member.uid;
    this.st.serverURL = m.serverURL;
    this.st.sessionURL = m.sessionURL;
    this.st.sparkUiURL = m.sparkUiURL;
    this.st.livySessionId = m.livySessionId;
    this.st.livySessionState = m.livySessionState;
    const from = `a warm server of LivySessionPool ${pool.name}`;
    this.cond(ConditionType.Idle, "False", why, "");
    this.cond(
      ConditionType.ServerReady,
      "True",
      Reason.ServerAvailable,
      `Deployment livy-${id} is available (${from})`,
    );
    this.cond(
      ConditionType.SessionReady,
      "True",
      Reason.SessionIdle,
      `Livy session ${m.livySessionId} is idle`,
    );
    this.cond(
      ConditionType.Ready,
      "True",
      Reason.Ready,
      `Livy session ${m.livySessionId} accepts statements at ${m.sessionURL} (${from})`,
    );
    this.event(
      "Normal",
      "HandedOver",
      `took the warm Livy server livy-${id} of LivySessionPool ${pool.name}`,
    );
    this.log("info", `handed over: the warm Livy server livy-${id} of LivySessionPool ${pool.name}`, {
      livySessionId: m.livySessionId,
    });
    return this.done(0);
  }

  private clearEndpoints(): void {
    this.st.serverURL = undefined;
    this.st.sessionURL = undefined;
    this.st.sparkUiURL = undefined;
    this.st.livySessionId = undefined;
    this.st.livySessionState = undefined;
  }

  private hasSession(): boolean {
    return this.st.livySessionId !== undefined && this.st.livySessionId !== null;
  }

  private desired(owner: OwnerRef = this.owner): DesiredObject[] {
    const s = this.o.settings;
    const server = withServerDefaults(s.defaultServer, this.spec.server);
    const spark = this.spec.spark;
    const credential = this.o.credential !== undefined;
    const cm = desiredConfigMap(owner, server, credential);
    const configHash = cm.metadata.annotations["livy.dev/spec-hash"] ?? "";
    const deployment = desiredDeployment(
      owner,
      server,
      {
        image: s.defaultImage,
        imagePullPolicy: s.defaultImagePullPolicy,
        resources: s.defaultResources,
      },
      configHash,
      credential,
      spark,
    );
    // after the spec hash: a new credential rewrites the Secret, it does not roll the server
    if (this.o.credential)
      deployment.metadata.annotations[CREDENTIAL_HASH_ANNOTATION] = hashOf(this.o.credential);
    const objects: DesiredObject[] = [];
    // the driver's identity (Kubernetes mode): applied before the others (plan.ts's APPLIED_FIRST)
    if (ownsDriverIdentity(server, spark))
      objects.push(
        { kind: "serviceAccount", object: desiredServiceAccount(owner) },
        { kind: "roleBinding", object: desiredRoleBinding(owner, s.sparkDriverClusterRole) },
      );
    objects.push(
      { kind: "deployment", object: deployment },
      { kind: "configMap", object: cm },
      { kind: "service", object: desiredService(owner) },
    );
    if (s.networkPolicy)
      objects.push({
        kind: "networkPolicy",
        object: desiredNetworkPolicy(owner, s.networkPolicyOperatorNamespace, spark),
      });
    return objects;
  }

  /**
   * The owned objects to apply (missing or changed) and to delete first: the driver's ServiceAccount and
   * RoleBinding when the spec no longer asks for them (local mode, or a ServiceAccount of the user's), the
   * NetworkPolicy when the operator no longer makes them (all three may be left from before a park), and a
   * RoleBinding whose ClusterRole changed (roleRef is immutable: it is deleted and created again).
   */
  private changes(): { apply: DesiredObject[]; deleteOwned: OwnedKind[] } {
    const desired = this.desired();
    const apply = desired.filter((d) => {
      const live = d.kind === "credential" ? undefined : this.o.owned[d.kind];
      return !live || (!live.metadata?.deletionTimestamp && !upToDate(live, d.object));
    });
    const deleteOwned: OwnedKind[] = [];
    // kept while parked (removeServer): the spec or the operator's settings may no longer ask for them
    for (const kind of ["serviceAccount", "roleBinding", "networkPolicy"] as const) {
      const live = this.o.owned[kind];
      if (live && !live.metadata?.deletionTimestamp && !desired.some((d) => d.kind === kind))
        deleteOwned.push(kind);
    }
    const rb = this.o.owned.roleBinding;
    const want = apply.find((d) => d.kind === "roleBinding")?.object as
      | { roleRef?: { name?: string } }
      | undefined;
    if (rb && !rb.metadata?.deletionTimestamp && want && rb.roleRef?.name !== want.roleRef?.name)
      deleteOwned.push("roleBinding");
    return { apply, deleteOwned };
  }

  private runDemanded(): Decision {
    const startMs = Date.parse(this.st.startTime ?? iso(this.now));
    if (startMs > this.now) {
      // Recover's backoff: the next attempt begins at startTime. A server that failed goes meanwhile (a
      // pass killed between the record and the deletion left it).
      if (getCondition(this.st.conditions, ConditionType.ServerReady)?.status !== "True") this.removeServer();
      return this.done(startMs - this.now);
    }
    const startupLeft = startMs + parseDuration(this.spec.startupTimeout) - this.now;

    // 1. The server's objects, applied only when missing or changed.
    const name = serverName(this.serverId);
    const liveDeployment = this.o.owned.deployment;
    if (this.hasSession() && (!liveDeployment || liveDeployment.metadata?.deletionTimestamp))
      return this.fail(
        Reason.ServerLost,
        `the Deployment ${name} was deleted from under the Livy session`,
        "server",
      );
    // The pod that held a Ready Livy session deleted, ended or restarted: the session went with its Livy
    // process, known from the pod at once (Livy would only say so once a replacement answers 404, and until
    // then the failure threshold reads the refused connections as a blip).
    const lost =
      this.hasSession() && this.st.readyTime
        ? serverPodLost(this.o.pods, Date.parse(this.st.readyTime))
        : null;
    if (lost)
      return this.fail(
        Reason.SessionLost,
        `${lost}: Livy session ${this.st.livySessionId} went with it`,
        "session",
      );
    const { apply, deleteOwned } = this.changes();
    // The credential's Secret goes with the Deployment, and again when the key changed under a running server
    // (the server's filter reads the new Secret, nothing restarts).
    if (this.o.credential) {
      const secret: DesiredObject = {
        kind: "credential",
        object: desiredCredentialSecret(this.owner, this.o.credential),
      };
      const hash = hashOf(this.o.credential);
      if (apply.some((d) => d.kind === "deployment")) apply.push(secret);
      else if (liveDeployment && liveDeployment.metadata?.annotations?.[CREDENTIAL_HASH_ANNOTATION] !== hash)
        return { plan: { apply: [secret], credentialHash: hash, requeueAfterMs: 0 } };
    }
    // A new template for the server of a live Livy session: the pod is replaced and the Livy session with
    // it, so say so and start a new attempt, rather than read the rollout as a lost server.
    if (this.hasSession() && apply.some((d) => d.kind === "deployment")) {
      if (deleteOwned.length) this.plan.deleteOwned = deleteOwned;
      return this.restart("spec.server", apply);
    }
    // The next step observes what was applied; the status waits for it (a crash in between decides the
    // same again: the demand is still unrecorded).
    if (apply.length || deleteOwned.length)
      return {
        plan: {
          ...(apply.length ? { apply } : {}),
          ...(deleteOwned.length ? { deleteOwned } : {}),
          requeueAfterMs: 0,
        },
      };

    // 2. The server. Its URL is part of the attempt's record from the attempt's first status write on, with
    // startTime (the Livy session's name): the step that creates the Livy session then needs no status write
    // of its own before the POST (both go out together), and a failure or a deletion that comes before the
    // session's id is recorded finds it by name at this URL.
    const url = serverUrl(this.o.settings.serverUrlTemplate, {
      name: this.serverId,
      namespace: this.owner.namespace,
      service: name,
      port: LIVY_PORT,
    });
    this.st.serverURL = url;
    const server = quoted(observeServer(liveDeployment, this.o.pods));
    this.log("debug", "observed the server", { server });
    if (server.state === "Failed") {
      if (this.spec.failurePolicy === "Recover" && !this.hasSession() && MAY_RESOLVE.has(server.reason)) {
        // Recover waits for what may still come (a node from the autoscaler, a pull that succeeds on the
        // kubelet's retry) until startupTimeout. Restarting at once deleted the pending pod each time, so
        // an autoscaler never saw it long enough to add a node, and the attempt never reached its deadline.
        const msg = `${server.reason}: ${server.message}`;
        if (startupLeft <= 0)
          return this.fail(
            Reason.StartupTimeout,
            `not Ready within ${this.spec.startupTimeout}: ${msg}`,
            "server",
          );
        this.cond(ConditionType.ServerReady, "False", server.reason, server.message);
        this.cond(ConditionType.SessionReady, "False", Reason.WaitingForServer, "");
        this.cond(ConditionType.Ready, "False", Reason.Starting, msg);
        this.st.message = msg;
        return this.done(Math.min(startupLeft, STARTING_RECHECK_MS));
      }
      return this.fail(server.reason, server.message, "server");
    }
    if (server.state !== "Available") {
      const msg = server.state === "Progressing" ? server.message : `Deployment ${name}: ${server.state}`;
      if (this.hasSession()) {
        // The Deployment of a live Livy session without an available pod: its node not ready (as after a
        // control-plane outage), a rollout someone else started, a pod being replaced. Not a lost server:
        // Livy's own answers decide (a replaced pod's Livy no longer knows the session).
        this.cond(ConditionType.ServerReady, "False", Reason.ServerUnavailable, msg);
      } else {
        this.cond(ConditionType.ServerReady, "False", Reason.Deploying, msg);
        this.cond(ConditionType.SessionReady, "False", Reason.WaitingForServer, "");
        this.cond(ConditionType.Ready, "False", this.startingReason(), msg);
        if (startupLeft <= 0)
          return this.fail(
            Reason.StartupTimeout,
            `not Ready within ${this.spec.startupTimeout}: ${msg}`,
            "server",
          );
        return this.done(Math.min(startupLeft, STARTING_RECHECK_MS));
      }
    } else {
      this.cond(ConditionType.ServerReady, "True", Reason.ServerAvailable, `Deployment ${name} is available`);
    }

    // 3. The Livy session.
    if (this.o.auth.state === "invalid" && this.st.readyTime) {
      // never ask Livy without the credentials it was opened with: a failed look, as for Livy's own faults
      return this.livyFailure(
        { kind: "http", message: `AuthSecretInvalid: ${quote(this.o.auth.message)}` },
        startupLeft,
      );
    }
    if (this.o.auth.state === "invalid") {
      // a configuration problem the user fixes by creating or correcting the Secret: retry, not Failed
      const msg = quote(this.o.auth.message);
      if (startupLeft <= 0)
        return this.fail(
          Reason.StartupTimeout,
          `not Ready within ${this.spec.startupTimeout}: AuthSecretInvalid: ${msg}`,
          "session",
        );
      this.cond(ConditionType.SessionReady, "False", Reason.AuthSecretInvalid, msg);
      this.cond(ConditionType.Ready, "False", Reason.AuthSecretInvalid, msg);
      this.st.message = `AuthSecretInvalid: ${msg}`;
      return this.done(Math.min(AUTH_RECHECK_MS, startupLeft));
    }
    const auth = authOf(this.o);
    const livy = this.o.livy;
    const warmup = this.st.readyTime ? undefined : warmupCode(this.spec);
    // This operator saw the session starting at its last look: nothing can have submitted the warm-up since
    // (Livy takes statements once the session is idle or busy, and only the operator submits the warm-up).
    // Once it is usable the warm-up goes out at once, without first searching the statements for it and
    // reading the activity (one round trip to Livy, and four requests, less on the way to Ready).
    const unsubmitted =
      warmup !== undefined &&
      this.hasSession() &&
      this.o.memory.sawStarting === `${this.st.livySessionId}/${this.livySessionName()}`;
    if (!livy) {
      return {
        observe: {
          url,
          auth,
          ...(this.hasSession()
            ? { sessionId: this.st.livySessionId ?? undefined }
            : { sessionName: this.livySessionName() }),
          activity: !unsubmitted,
          owner: { namespace: this.owner.namespace, name: this.serverId },
          ...(warmup !== undefined && !unsubmitted ? { warmup: { code: warmup } } : {}),
        },
      };
    }
    if (!livy.session.ok) return this.livyFailure(livy.session.error, startupLeft);
    let session = livy.session.value;
    if (session && !(Number.isInteger(session.id) && session.id >= 0 && session.id <= MAX_SESSION_ID)) {
      // not Livy's protocol, and it would not fit status.livySessionId
      return this.livyFailure(
        {
          kind: "protocol",
          message: `Livy answered with session id ${session.id}, outside 0..${MAX_SESSION_ID}`,
        },
        startupLeft,
      );
    }
    if (!session) {
      // Nothing of this attempt on the server yet: create it, then look again. The attempt's record (what the
      // name derives from, and the URL) comes first, so that a crash after the POST adopts the session and a
      // deletion finds it: when an earlier write stored it (the attempt's first status write did), the POST
      // goes out with this step's status write instead of after it (one API round trip less to Ready).
      const stored = this.o.resource.status;
      const recorded =
        stored?.serverURL === url &&
        stored.startTime === this.st.startTime &&
        (stored.restarts ?? 0) === (this.st.restarts ?? 0) &&
        (stored.server ?? undefined) === (this.st.server ?? undefined);
      this.plan.createLivySession = {
        url,
        auth,
        body: { ...withBuiltInSessionConf(this.sessionBody()), name: this.livySessionName() },
        ...(recorded ? { recorded: true } : {}),
      };
      this.event("Normal", "SessionCreated", `Livy session ${this.livySessionName()} created at ${url}`);
      return this.done(0);
    }
    if (!this.hasSession()) {
      this.log("info", "found the Livy session of this attempt", {
        livySessionId: session.id,
        state: session.state,
      });
      this.st.livySessionId = session.id;
    }
    this.st.livySessionState = session.state;
    this.st.sessionURL = `${url}/sessions/${session.id}`;
    this.st.sparkUiURL = this.sparkUiUrl();
    const state = quote(session.state, STATUS_LIMITS.livySessionState);
    if (isEnded(session)) return this.sessionDead(session);
    if (!isSessionUsable(session.state)) {
      const msg = `Livy session ${session.id} is ${state}`;
      // not yet taking statements (a `recovering` one may hold some already)
      if (session.state === "starting" || session.state === "not_started")
        this.plan.memory = { ...this.o.memory, sawStarting: `${session.id}/${session.name ?? ""}` };
      this.cond(ConditionType.SessionReady, "False", Reason.SessionStarting, msg);
      this.cond(ConditionType.Ready, "False", this.startingReason(), msg);
      if (startupLeft <= 0)
        return this.fail(
          Reason.StartupTimeout,
          `Livy session not idle within ${this.spec.startupTimeout} (still ${state})`,
          "session",
        );
      return this.done(
        Math.min(startingPollMs(this.o.starting ?? 1, this.o.settings.sessionPollIntervalMs), startupLeft),
      );
    }

    // A new spec.session needs a new Livy session (its name records the body it was created from).
    const createdFrom = sessionSpecHashOf(session.name);
    if (createdFrom !== undefined && createdFrom !== this.sessionSpecHash())
      return this.restart("spec.session");

    // 4. Ready: endpoints, activity, idle deadline. Livy answered: past failed looks are forgotten.
    if (this.o.memory.livyFailures) this.plan.memory = {};
    const wasReady = getCondition(this.st.conditions, ConditionType.Ready)?.status === "True";
    this.cond(
      ConditionType.SessionReady,
      "True",
      session.state === "busy" ? Reason.SessionBusy : Reason.SessionIdle,
      `Livy session ${session.id} is ${session.state}`,
    );
    if (warmup !== undefined) {
      const warming = this.warmUp(session, warmup, url, auth, startupLeft, unsubmitted);
      if (warming) return warming;
    }
    this.cond(
      ConditionType.Ready,
      "True",
      Reason.Ready,
      `Livy session ${session.id} accepts statements at ${this.st.sessionURL}`,
    );
    if (!wasReady) {
      this.st.readyTime = iso(this.now);
      this.st.message = undefined;
      this.plan.metrics = { demandToReadySeconds: (this.now - startMs) / 1000 };
    }
    const activity = livy.activity;
    if (!activity) return this.done(0); // asked for, but the session was not usable then: look again
    if (!activity.ok) return this.livyFailure(activity.error, startupLeft);
    session = livy.session.value;
    const busy = session?.state === "busy" || activity.value.busy;
    const lastKnown = Date.parse(this.st.lastActivityTime ?? this.st.readyTime ?? iso(this.now));
    const seen = busy ? this.now : Math.max(lastKnown, activity.value.latestMs);
    if (seen > lastKnown || !this.st.lastActivityTime) this.st.lastActivityTime = iso(seen);
    const idleMs = parseDuration(this.spec.idleTimeout);
    const poll = servingPollMs(this.o.serving ?? 1, this.o.settings.sessionPollIntervalMs);
    // the next look is a routine poll: it yields to starts and changes (queue.ts lanes)
    this.plan.routine = true;
    if (idleMs <= 0 || busy) return this.done(poll);
    const deadline = Date.parse(this.st.lastActivityTime) + idleMs;
    if (deadline <= this.now) {
      this.plan.routine = undefined;
      this.plan.metrics = { ...this.plan.metrics, idleTeardown: true };
      return this.park(Reason.IdleTimeout, this.idleMessage());
    }
    return this.done(Math.min(poll, deadline - this.now));
  }

  /**
   * Before the first Ready of a Livy session: its warm-up statement (spec.warmup), found by its code, is
   * submitted once and waited for, so that the first statement a user sends finds a warm JVM (and, for
   * pyspark, a Python worker). Ready=False WarmingUp meanwhile; an error in it is WarmupFailed, handled by
   * the failure policy like a dead session; startupTimeout bounds it. undefined: warmed, go on to Ready.
   * Found by its code rather than recorded: a pass killed after the POST finds it next time, and one
   * killed before finds none and submits it then.
   */
  private warmUp(
    session: Session,
    code: string,
    url: string,
    auth: LivyAuth | undefined,
    startupLeft: number,
    unsubmitted: boolean,
  ): Decision | undefined {
    const answer: LivyAnswer<Statement | null> | undefined = unsubmitted
      ? { ok: true, value: null }
      : this.o.livy?.warmup;
    if (!answer) return this.done(0); // asked for, but the session was not usable then: look again
    if (!answer.ok) return this.livyFailure(answer.error, startupLeft);
    const st: Statement | null = answer.value;
    // polled as tightly as a starting session (bounded in total over all that start or warm up at once)
    const poll = startingPollMs(this.o.starting ?? 1, this.o.settings.sessionPollIntervalMs);
    const waiting = (msg: string): Decision => {
      this.cond(ConditionType.Ready, "False", Reason.WarmingUp, msg);
      if (startupLeft <= 0)
        return this.fail(
          Reason.StartupTimeout,
          `warm-up not done within ${this.spec.startupTimeout}: ${msg}`,
          "session",
        );
      return this.done(Math.min(poll, startupLeft));
    };
    const tag = `${session.id}/${session.name ?? ""}`;
    if (!st) {
      // past the deadline nothing is submitted: the failure deletes the Livy session in the same plan (a
      // 10,000-session run saw the warm-up POSTed to sessions the same step had deleted: HTTP 404)
      if (startupLeft <= 0)
        return waiting(`Livy session ${session.id} had not started its warm-up statement`);
      this.plan.submitWarmup = { url, auth, sessionId: session.id, code };
      this.log("info", "warming up the Livy session before Ready", { livySessionId: session.id });
      const { sawStarting: _, ...rest } = this.o.memory;
      const memory = { ...rest, warmupSubmitted: tag };
      if (this.o.memory.warmupSubmitted !== tag) {
        // The first submission to this Livy session goes out before any status write and is looked at
        // again at once: a warm-up that has ended by then goes straight to Ready (one status write, and
        // Ready follows its end without a status write and a poll in between); one still running is
        // recorded as WarmingUp by that next step. A crash in between finds it by its code.
        return { plan: { ...this.plan, submitWarmup: this.plan.submitWarmup, memory, requeueAfterMs: 0 } };
      }
      // submitted before and not listed yet: submitted again, a poll later (never a tight loop)
      this.plan.memory = memory;
      return waiting(`Livy session ${session.id} is running its warm-up statement`);
    }
    const state = quote(st.state, STATUS_LIMITS.livySessionState);
    const output = st.output;
    if (st.state === "cancelled" || st.state === "cancelling")
      return this.fail(
        Reason.WarmupFailed,
        `warm-up statement ${st.id} of Livy session ${session.id} was cancelled`,
        "session",
      );
    if (output?.status === "error")
      return this.fail(
        Reason.WarmupFailed,
        `warm-up statement ${st.id} of Livy session ${session.id} failed: ${quote(`${output.ename}: ${output.evalue}`)}`,
        "session",
      );
    // done with its output: warm (Livy briefly reports `available` before the output is there)
    if (isStatementDone(st.state) && output?.status === "ok") {
      if (session.state === "busy" && this.o.memory.warmupSubmitted === tag) {
        // This look read the session while the warm-up still ran and its statements after it ended (as the
        // look right after a short warm-up's submission does): Livy says idle a moment later. Looked at
        // once more, at once, rather than Ready recorded as busy and corrected by the next poll (a status
        // write more, and `busy` shown at Ready). Once only: a session still busy then runs something else.
        return {
          plan: {
            ...this.plan,
            memory: { ...this.o.memory, warmupSubmitted: `${tag}/ended` },
            requeueAfterMs: 0,
          },
        };
      }
      const tookMs = st.started && st.completed ? st.completed - st.started : undefined;
      this.log("info", "warmed up", { livySessionId: session.id, statement: st.id, tookMs });
      return undefined;
    }
    return waiting(`Livy session ${session.id} is running its warm-up statement ${st.id} (${state})`);
  }

  private idleMessage(): string {
    return `no activity for ${this.spec.idleTimeout}: the Livy server was removed; set annotation ${ANNOTATION_DEMANDED_AT} (livyctl wake) to start it again`;
  }

  /** Ready once, and by the activity recorded in status, past the idle deadline. */
  private idleDeadlinePassed(): boolean {
    const idleMs = parseDuration(this.spec.idleTimeout);
    const last = Date.parse(this.st.lastActivityTime ?? this.st.readyTime ?? "");
    return Boolean(this.st.readyTime) && idleMs > 0 && Number.isFinite(last) && last + idleMs <= this.now;
  }

  private sessionDead(session: Session): Decision {
    this.st.livySessionState = session.state;
    // the last lines of its log, each cut: what is copied from Livy stays small in status and events
    const tail = (session.log ?? [])
      .slice(-LOG_TAIL_LINES)
      .map((l) => quote(l, LOG_LINE_CHARS))
      .join("\n");
    const state = quote(session.state, STATUS_LIMITS.livySessionState);
    return this.fail(
      Reason.SessionDead,
      `Livy session ${session.id} is ${state}${tail ? `; last log lines:\n${tail}` : ""}`,
      "session",
    );
  }

  /**
   * Unique per LivySession, attempt and restart (Livy refuses duplicate names, which guards us too), and
   * ending with a digest of the body it is created from, so that a spec.session edit is seen on a live one.
   */
  private livySessionName(): string {
    const attempt = Date.parse(this.st.startTime ?? "0").toString(36);
    const m = this.o.resource.metadata;
    return `${m.namespace}.${this.serverId}.${attempt}.${this.st.restarts ?? 0}.${this.sessionSpecHash()}`;
  }

  /**
   * Livy's POST /sessions body: spec.session over the operator's default Spark conf, and the kind; in
   * Kubernetes mode with the Spark conf that spec.spark derives (last: admission keeps spec.session.conf
   * from setting those keys, and an operator default must not either). A local session's body is what it
   * was, so its name's digest, and the session, stay.
   */
  private sessionBody() {
    const s = this.o.settings;
    const session = withSessionDefaults(s.defaultSessionConf, this.spec.session);
    const derived = sparkConf({
      name: this.owner.name,
      spark: this.spec.spark,
      serverImage: this.spec.server?.image ?? s.defaultImage,
      serverImagePullPolicy: this.spec.server?.imagePullPolicy ?? s.defaultImagePullPolicy,
    });
    if (Object.keys(derived).length === 0) return { ...session, kind: this.spec.kind };
    return { ...session, conf: { ...session?.conf, ...derived }, kind: this.spec.kind };
  }

  /**
   * The Spark UI (the driver's port behind the server's Service): the server URL template with the UI's
   * port. A template without {port} addresses one fixed port (the Livy server's), so there is no UI URL.
   */
  private sparkUiUrl(): string | undefined {
    const template = this.o.settings.serverUrlTemplate;
    if (!template.includes("{port}")) return undefined;
    return serverUrl(template, {
      name: this.serverId,
      namespace: this.owner.namespace,
      service: serverName(this.serverId),
      port: SPARK_UI_PORT,
    });
  }

  private sessionSpecHash(): string {
    return hashOf(this.sessionBody()).slice(0, 8);
  }

  /** Restarting, while a restart for a spec change is under way; else Starting. */
  private startingReason(): Reason {
    return getCondition(this.st.conditions, ConditionType.Ready)?.reason === Reason.Restarting
      ? Reason.Restarting
      : Reason.Starting;
  }

  /**
   * A spec change that the live server (spec.server) or Livy session (spec.session) cannot take: the Livy
   * session is deleted, the server rolled when it changed, and a new attempt opens a new Livy session,
   * whatever the failure policy (the edit is a demand; the policy governs failures of the new attempt).
   */
  private restart(what: "spec.server" | "spec.session", apply?: DesiredObject[]): Decision {
    const old = this.st.livySessionId;
    const msg =
      what === "spec.server"
        ? `spec.server changed (generation ${this.generation}): the Livy server restarts with it; Livy session ${old} is replaced by a new one`
        : `spec.session or spec.spark changed (generation ${this.generation}): Livy session ${old} is replaced by a new one on the same server`;
    this.log("info", msg, { livySessionId: old });
    this.event("Normal", Reason.Restarting, msg);
    this.deleteSession();
    this.st.startTime = iso(this.now);
    this.st.restarts = 0;
    this.st.readyTime = undefined;
    this.st.lastActivityTime = undefined;
    this.st.message = undefined;
    this.clearEndpoints();
    if (apply) {
      this.plan.apply = apply;
      this.cond(ConditionType.ServerReady, "False", Reason.Restarting, msg);
    }
    this.cond(ConditionType.SessionReady, "False", Reason.Restarting, msg);
    this.cond(ConditionType.Ready, "False", Reason.Restarting, msg);
    this.cond(ConditionType.Idle, "False", Reason.SpecChanged, "");
    return this.done(0);
  }

  private livyFailure(err: LivyFailure, startupLeft: number): Decision {
    const everReady = Boolean(this.st.readyTime);
    if (err.kind === "gone") {
      // An idle teardown cut short (operator killed after deleting the Livy session, before recording
      // it): the session is gone because we removed it, so finish the teardown instead of failing.
      if (this.idleDeadlinePassed()) {
        this.plan.metrics = { ...this.plan.metrics, idleTeardown: true };
        return this.park(Reason.IdleTimeout, this.idleMessage());
      }
      return this.fail(
        Reason.SessionLost,
        `Livy session ${this.st.livySessionId} no longer exists on ${this.st.serverURL}`,
        "session",
      );
    }
    const msg = quote(err.message);
    const unreachable = err.kind === "unreachable" || err.kind === "timeout";
    if (everReady) {
      // A session that was Ready and cannot be read now: one failed look is no failure (a DNS blip, a GC
      // pause, a slow answer). As a probe's failureThreshold: the policy acts once the failures are both
      // numerous and long enough; meanwhile the record stays as it was.
      const s = this.o.settings;
      const before = this.o.memory.livyFailures;
      const seen = { since: before?.since ?? this.now, count: (before?.count ?? 0) + 1, last: msg };
      const spanMs = this.now - seen.since;
      if (seen.count < s.livyFailureThreshold || spanMs < s.livyFailureWindowMs) {
        this.plan.memory = { livyFailures: seen };
        this.log("warn", `a look at the Livy server failed (${seen.count} in a row): ${msg}`, {
          failures: seen.count,
          sinceMs: spanMs,
        });
        return this.done(s.sessionPollIntervalMs);
      }
      const over = `${seen.count} failed looks over ${Math.round(spanMs / 1000)}s: ${msg}`;
      return this.fail(
        unreachable ? Reason.LivyUnreachable : Reason.LivyError,
        unreachable ? `the Livy server stopped answering: ${over}` : `Livy answered with errors: ${over}`,
        "server",
      );
    }
    if (err.tooManySessions && startupLeft > 0) {
      this.cond(ConditionType.Ready, "False", Reason.Starting, `Livy is busy creating sessions: ${msg}`);
      return this.done(Math.min(1_000, startupLeft));
    }
    if (startupLeft <= 0)
      return this.fail(
        Reason.StartupTimeout,
        `Livy not usable within ${this.spec.startupTimeout}: ${msg}`,
        "server",
      );
    this.cond(
      ConditionType.SessionReady,
      "False",
      err.kind === "unreachable" ? Reason.LivyUnreachable : Reason.LivyError,
      msg,
    );
    this.cond(ConditionType.Ready, "False", this.startingReason(), msg);
    // before Ready, a server that does not answer yet is starting: retry soon, bounded by startupTimeout
    return this.done(Math.min(1_000, startupLeft));
  }

  /**
   * FailFast: Failed with the reason, server removed, nothing retried until a new demand.
   * Recover: restart (the session, or the whole server) with exponential backoff, up to maxRestarts.
   */
  private fail(reason: Reason, message: string, scope: Scope): Decision {
    // first, while the record still names this attempt's Livy session
    this.deleteSession();
    const restarts = this.st.restarts ?? 0;
    const max = this.spec.maxRestarts;
    this.plan.memory = {};
    // an invalid spec fails the same way on every attempt: no restart
    const recoverable = reason !== Reason.InvalidSpec;
    if (this.spec.failurePolicy === "Recover" && recoverable && (max === undefined || restarts < max)) {
      const backoffMs = backoffDelay(RECOVER_BACKOFF, restarts);
      this.st.restarts = restarts + 1;
      this.log("warn", `recovering: ${message}`, { reason, restarts: this.st.restarts, backoffMs });
      this.cond(
        ConditionType.Ready,
        "False",
        Reason.Recovering,
        `${reason}: ${message}; restart ${this.st.restarts} in ${Math.round(backoffMs / 1000)}s`,
      );
      this.cond(ConditionType.SessionReady, "False", reason, message);
      this.st.message = `${reason}: ${message}`;
      this.event("Warning", reason, `${message} (restart ${this.st.restarts})`);
      if (scope === "server" || !SESSION_FAILURES.has(reason)) {
        this.removeServer();
        this.cond(ConditionType.ServerReady, "False", reason, message);
      }
      // the next attempt, and its startup deadline, begin after the backoff
      this.st.startTime = iso(this.now + backoffMs);
      this.st.readyTime = undefined;
      this.st.livySessionId = undefined;
      this.st.livySessionState = undefined;
      this.st.sessionURL = undefined;
      this.st.sparkUiURL = undefined;
      return this.done(backoffMs);
    }
    const gaveUp = this.spec.failurePolicy === "Recover" && recoverable;
    const finalReason = gaveUp ? Reason.RestartLimitReached : reason;
    const finalMessage = gaveUp ? `${restarts} restarts, then ${reason}: ${message}` : message;
    this.log("warn", `failed: ${finalMessage}`, { reason: finalReason });
    this.removeServer();
    this.cond(
      scope === "server" ? ConditionType.ServerReady : ConditionType.SessionReady,
      "False",
      reason,
      message,
    );
    this.cond(ConditionType.Ready, "False", finalReason, finalMessage);
    this.st.message = `${finalReason}: ${finalMessage}`;
    const failedState = this.st.livySessionState;
    this.clearEndpoints();
    if (failedState) this.st.livySessionState = failedState;
    return this.done();
  }

  /** Suspended or idle: no server, no Livy session, the resource and its record stay. */
  private park(reason: typeof Reason.Suspended | typeof Reason.IdleTimeout, message: string): Decision {
    // The Livy session (its id is in status until the record is written), then the record, then the server
    // (execute() keeps this order). Killed after the first step, the next pass finds the Livy session gone
    // past the idle deadline and parks; after the second, it finds the resource parked and removes the
    // server. Removing the server first made the next pass read the half-removed server as lost.
    this.deleteSession();
    const idle = getCondition(this.st.conditions, ConditionType.Idle);
    if (idle?.status !== "True" || idle.reason !== reason) this.st.idleSince = iso(this.now);
    this.clearEndpoints();
    this.cond(ConditionType.Idle, "True", reason, message);
    this.cond(ConditionType.Ready, "False", reason, message);
    this.cond(ConditionType.ServerReady, "False", reason, "");
    this.cond(ConditionType.SessionReady, "False", reason, "");
    this.st.message = undefined;
    this.removeServer(true);
    return this.done();
  }

  /** Parked: make sure nothing runs, without touching the record. */
  private teardown(parked: boolean): void {
    this.deleteSession();
    this.removeServer(parked);
  }

  /**
   * Plans the deletion of this attempt's Livy session: by id once recorded, else by its name, which covers
   * a session created by a step whose record of it was not written yet (a failure or a deletion seen
   * right after the POST, or a pass killed in between).
   */
  private deleteSession(): void {
    const id = this.st.livySessionId;
    const url = this.st.serverURL;
    if (!url) return;
    if (id !== undefined && id !== null) this.plan.deleteLivySession = { url, id, auth: authOf(this.o) };
    else if (this.st.startTime)
      this.plan.deleteLivySession = { url, name: this.livySessionName(), auth: authOf(this.o) };
  }

  /**
   * The owned objects that exist and are not already being deleted. Parked (idle or suspended) on its own
   * server, only the Deployment goes: what runs. Its Service, ConfigMap, NetworkPolicy, credential Secret
   * and the driver's ServiceAccount and RoleBinding hold no pod and no compute, and stay until the
   * LivySession is deleted (garbage collection, by their owner references), so that an idle teardown is one
   * DELETE and a wake applies only the Deployment (the rest is up to date unless the spec changed): the
   * way a Deployment scaled to zero keeps its Service. A failure removes everything (the next start, if
   * any, builds it again), and so does parking on a pooled server taken over (status.server): the next
   * start is the LivySession's own, named after it, and the pooled one's objects would be left over.
   */
  private removeServer(parked = false): void {
    if (parked && !this.st.server) {
      const live = this.o.owned.deployment;
      if (live && !live.metadata?.deletionTimestamp) this.plan.deleteOwned = ["deployment"];
      return;
    }
    const kinds: Array<OwnedKind | "credential"> = OWNED_KINDS.filter((k) => {
      const live = this.o.owned[k];
      return live && !live.metadata?.deletionTimestamp;
    });
    // the credential's Secret goes with its server (the Deployment says it was given one): it is written
    // again with the next server, and nothing of a parked session is left but the LivySession
    // (with per-session credentials on, whenever any of the server's objects is still there: the pass
    // that deletes the Deployment may see it already gone from the cache while the Secret is not — found
    // on the real node, where the Secret outlived every idle teardown)
    if (
      kinds.length > 0 &&
      (this.o.credential !== undefined ||
        this.o.owned.deployment?.metadata?.annotations?.[CREDENTIAL_HASH_ANNOTATION])
    )
      kinds.push("credential");
    if (kinds.length) this.plan.deleteOwned = kinds;
  }
}

/** Cuts text copied from outside (Livy, the cluster) to what a status message quotes. */
function quote(text: string, max: number = STATUS_LIMITS.quoted): string {
  return truncate(text, max);
}

function quoted(server: ServerObservation): ServerObservation {
  return "message" in server ? { ...server, message: quote(server.message) } : server;
}

/** Whatever was copied in, the status fits its schema: a status the API server refuses is never updated again. */
function bound(st: Status): void {
  if (st.message !== undefined) st.message = truncate(st.message, STATUS_LIMITS.message);
  if (st.livySessionState !== undefined && st.livySessionState !== null)
    st.livySessionState = truncate(st.livySessionState, STATUS_LIMITS.livySessionState);
  if (st.demandedAt !== undefined && st.demandedAt !== null) st.demandedAt = demandToken(st.demandedAt);
}

/** The digest of the body a Livy session was created from, from its name; undefined for other names. */
function sessionSpecHashOf(name: string | null | undefined): string | undefined {
  const parts = (name ?? "").split(".");
  return parts.length === 5 ? parts[4] : undefined;
}

/** A Livy session that will not take statements again. */
function isEnded(session: Session): boolean {
  return isSessionTerminal(session.state) || session.state === "shutting_down";
}
