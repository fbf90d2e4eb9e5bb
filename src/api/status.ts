/**
 * The status contract of a LivySession, in one place: condition types, reasons, phases, the bounds of every
 * status field, and the readers that every consumer (operator, client, livyctl, benchmarks, tests) uses
 * instead of looking conditions up by hand. The operator sets conditions from what it observes; `phase` is
 * derived from them for `kubectl get` only, so nothing should branch on the stored phase.
 *
 * Every reason here is emitted by the operator and the operator emits no other (a unit test holds both ways).
 */
import { createHash } from "node:crypto";
import type { LivySessionStatus } from "./livysession.ts";

export const ConditionType = {
  /** The Livy server's Deployment is available (its pod ready). Informative: Ready follows the Livy session. */
  ServerReady: "ServerReady",
  /** The Livy interactive session exists and accepts statements (Livy state idle or busy). */
  SessionReady: "SessionReady",
  /** The endpoints in status can be used: the Livy session accepts statements. */
  Ready: "Ready",
  /** True while nothing runs on purpose: torn down after idleTimeout, or suspended. */
  Idle: "Idle",
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];
export const CONDITION_TYPES: readonly ConditionType[] = Object.values(ConditionType);

export type ConditionStatus = "True" | "False" | "Unknown";

/** metav1.Condition. */
export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number | undefined;
}

interface ReasonSpec {
  /** The conditions that carry it. */
  readonly on: readonly ConditionType[];
  /** On Ready=False it makes the phase Failed: nothing restarts until a new demand. */
  readonly failure?: true;
  /** What it means for the user, and what comes next. */
  readonly doc: string;
}

const S = "ServerReady";
const L = "SessionReady";
const R = "Ready";
const I = "Idle";

/**
 * Reasons (CamelCase, as metav1.Condition requires). A failure reason is set on Ready, and on ServerReady or
 * SessionReady depending on where the failure was seen.
 */
export const REASONS = {
  Ready: { on: [R], doc: "the Livy session accepts statements at status.sessionURL" },
  Starting: {
    on: [R],
    doc: "a start attempt is under way (server deploying, Livy session starting); the message says what is awaited",
  },
  Restarting: {
    on: [S, L, R],
    doc: "a spec change needs a new Livy server (spec.server) or Livy session (spec.session): the old one is replaced, a new Livy session follows",
  },
  WarmingUp: {
    on: [R],
    doc: "the Livy session is up and runs its warm-up statement (spec.warmup) before Ready, so the first real statement finds a warm JVM",
  },
  Recovering: {
    on: [R],
    doc: "failurePolicy Recover replaces the Livy session or the whole server after a failure (status.restarts counts)",
  },
  AuthSecretInvalid: {
    on: [L, R],
    doc: "the spec.auth Secret is missing or lacks its keys (never shown); waited for until startupTimeout",
  },
  Suspended: { on: [S, L, R, I], doc: "spec.suspend is true: nothing runs until it is false" },
  IdleTimeout: {
    on: [S, L, R, I],
    doc: "torn down after spec.idleTimeout without activity; the next demand starts it again",
  },
  Deleting: {
    on: [R],
    doc: "the LivySession is being deleted; its Livy session is deleted first (retried while Livy does not answer)",
  },
  ServerAvailable: { on: [S], doc: "the Deployment is available" },
  Deploying: { on: [S], doc: "the Deployment was applied and its pod is not available yet" },
  ServerUnavailable: {
    on: [S],
    doc: "the Deployment of a Ready session has no available pod (e.g. its node not ready); Ready follows what Livy answers",
  },
  WaitingForServer: { on: [L], doc: "the Livy session waits for the server to become available" },
  SessionStarting: { on: [L], doc: "the Livy session was requested and is starting (not_started, starting)" },
  SessionIdle: { on: [L], doc: "the Livy session is idle, waiting for statements" },
  SessionBusy: { on: [L], doc: "the Livy session is running a statement" },
  Active: { on: [I], doc: "not idle: the session is in use or being started" },
  Demanded: { on: [I], doc: "woken by a new value of the livy.dev/demanded-at annotation" },
  SpecChanged: { on: [I], doc: "a spec change restarted a parked (Idle or Failed) session" },
  ImagePullFailed: {
    on: [S, R],
    failure: true,
    doc: "the Livy image cannot be pulled (ErrImagePull, ImagePullBackOff, InvalidImageName)",
  },
  Unschedulable: {
    on: [S, R],
    failure: true,
    doc: "the Livy pod cannot be scheduled (resources, node selector, taints)",
  },
  CrashLooping: { on: [S, R], failure: true, doc: "the Livy server keeps crashing (CrashLoopBackOff)" },
  ContainerConfigError: {
    on: [S, R],
    failure: true,
    doc: "the Livy container cannot be created (CreateContainerConfigError, e.g. a missing ConfigMap or Secret key)",
  },
  ReplicaFailure: {
    on: [S, R],
    failure: true,
    doc: "the Deployment cannot create its pod (quota, a missing service account)",
  },
  StartupTimeout: {
    on: [S, L, R],
    failure: true,
    doc: "not Ready within spec.startupTimeout of the start of this attempt; the message names what was awaited",
  },
  SessionDead: {
    on: [L, R],
    failure: true,
    doc: "the Livy session ended (dead, killed, error, success); the last lines of its log are in the message",
  },
  WarmupFailed: {
    on: [L, R],
    failure: true,
    doc: "the warm-up statement (spec.warmup) ended with an error or was cancelled; the message quotes Livy's error",
  },
  SessionLost: {
    on: [L, R],
    failure: true,
    doc: "the Livy session is gone: Livy no longer knows it (HTTP 404), or the pod of its Livy server was deleted, ended or restarted (the session lived in that process)",
  },
  ServerLost: {
    on: [S, R],
    failure: true,
    doc: "the Deployment of a Ready session was deleted from under it",
  },
  LivyUnreachable: {
    on: [S, L, R],
    failure: true,
    doc: "the Livy server did not answer (refused, reset, timed out) for the failure threshold and window",
  },
  LivyError: {
    on: [S, L, R],
    failure: true,
    doc: "Livy answered with errors (HTTP 4xx/5xx, not its protocol) for the failure threshold and window",
  },
  RestartLimitReached: {
    on: [R],
    failure: true,
    doc: "failurePolicy Recover gave up after spec.maxRestarts restarts; the message names the last failure",
  },
  InvalidSpec: {
    on: [S, R],
    failure: true,
    doc: "the API server refuses an object built from the spec (HTTP 422); nothing retries until the spec changes",
  },
} as const satisfies Record<string, ReasonSpec>;

export type Reason = keyof typeof REASONS;
/** `Reason.Ready === "Ready"`: use these rather than string literals, so that a typo does not compile. */
export const Reason = Object.fromEntries(Object.keys(REASONS).map((k) => [k, k])) as {
  readonly [K in Reason]: K;
};
export const ALL_REASONS = Object.keys(REASONS) as Reason[];

export type FailureReason = {
  [K in Reason]: (typeof REASONS)[K] extends { failure: true } ? K : never;
}[Reason];
/** Ready=False with one of these is a failure: the phase is Failed, nothing restarts until a new demand. */
export const FAILURE_REASONS: ReadonlySet<string> = new Set(
  ALL_REASONS.filter((r) => (REASONS[r] as ReasonSpec).failure),
);
export function isFailureReason(reason: string | undefined): reason is FailureReason {
  return reason !== undefined && FAILURE_REASONS.has(reason);
}

/**
 * The phase shown by kubectl, derived from the conditions:
 * - Pending: demanded, nothing deployed yet; Starting: server deploying, Livy session starting, restarting
 *   or recovering;
 * - Ready: Ready=True; Idle: Idle=True (torn down, resource kept); Suspended: spec.suspend;
 * - Failed: Ready=False with a failure reason; Terminating: being deleted.
 */
export const PHASES = ["Pending", "Starting", "Ready", "Idle", "Suspended", "Failed", "Terminating"] as const;
export type Phase = (typeof PHASES)[number];

/** The condition reason grammar of metav1.Condition. */
export const REASON_PATTERN = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";

/**
 * The bounds of the status fields (the CRD's maxLength, in characters). Whatever the operator copies from
 * outside (Livy's answers, the API server's messages, the demand annotation) is cut to these before it is
 * written: a status the API server refuses (422) is a status that never changes again.
 */
export const STATUS_LIMITS = {
  /** status.message and each condition's message. */
  message: 32_768,
  /** What the operator itself puts in a message from outside (a Livy log line, an error text). */
  quoted: 1_024,
  reason: 1_024,
  url: 2_048,
  livySessionState: 64,
  demandedAt: 64,
  timestamp: 64,
} as const;

/** Cuts `text` to at most `max` characters (Unicode code points, as the API server counts), marking the cut. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text; // UTF-16 length bounds the code points from above
  const points = Array.from(text);
  if (points.length <= max) return text;
  return `${points.slice(0, Math.max(0, max - 1)).join("")}…`;
}

/**
 * What status.demandedAt records of the `livy.dev/demanded-at` annotation: the value itself when it fits the
 * field, else a digest of it. Annotations have no length limit of their own, and copying a long one made
 * every status write fail (and every pass read the unchanged status as a new demand).
 */
export function demandToken(annotation: string): string {
  if (Array.from(annotation).length <= STATUS_LIMITS.demandedAt) return annotation;
  return `sha256:${createHash("sha256")
    .update(annotation)
    .digest("hex")
    .slice(0, STATUS_LIMITS.demandedAt - 7)}`;
}

type Conditions = readonly Condition[] | undefined;
interface WithStatus {
  metadata?: { deletionTimestamp?: string | Date | undefined } | undefined;
  status?: Pick<LivySessionStatus, "conditions"> | undefined | null;
}

export function getCondition(conditions: Conditions, type: ConditionType | string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** The Ready condition: the one whose reason matters. */
export function readyCondition(obj: WithStatus | null | undefined): Condition | undefined {
  return getCondition(obj?.status?.conditions, ConditionType.Ready);
}

/** Ready=True: the endpoints in status accept statements. */
export function isReady(obj: WithStatus | null | undefined): boolean {
  return readyCondition(obj)?.status === "True";
}

/** Idle=True for idleness (not suspension): the next demand starts it again. */
export function isIdle(obj: WithStatus | null | undefined): boolean {
  const idle = getCondition(obj?.status?.conditions, ConditionType.Idle);
  return idle?.status === "True" && idle.reason === Reason.IdleTimeout;
}

export function isSuspended(obj: WithStatus | null | undefined): boolean {
  const idle = getCondition(obj?.status?.conditions, ConditionType.Idle);
  return idle?.status === "True" && idle.reason === Reason.Suspended;
}

/** The failure a Failed session is parked with, or undefined. */
export function failureOf(
  obj: WithStatus | null | undefined,
): { reason: FailureReason; message: string } | undefined {
  const ready = readyCondition(obj);
  if (ready?.status !== "False" || !isFailureReason(ready.reason)) return undefined;
  return { reason: ready.reason, message: ready.message };
}

export function isFailed(obj: WithStatus | null | undefined): boolean {
  return failureOf(obj) !== undefined;
}

/** The phase shown by kubectl, derived from the conditions (the conditions are the API). */
export function derivePhase(conditions: Conditions, deleting: boolean): Phase {
  if (deleting) return "Terminating";
  const ready = getCondition(conditions, ConditionType.Ready);
  const idle = getCondition(conditions, ConditionType.Idle);
  if (ready?.status === "True") return "Ready";
  if (idle?.status === "True") return idle.reason === Reason.Suspended ? "Suspended" : "Idle";
  if (ready && isFailureReason(ready.reason)) return "Failed";
  if (ready?.reason === Reason.Deleting) return "Terminating";
  if (ready || getCondition(conditions, ConditionType.ServerReady)) return "Starting";
  return "Pending";
}

/** The phase of an object as read from the cluster, from its conditions rather than the stored phase. */
export function phaseOf(obj: WithStatus | null | undefined): Phase {
  return derivePhase(obj?.status?.conditions, Boolean(obj?.metadata?.deletionTimestamp));
}

/** RFC 3339 with second precision, as metav1.Time serializes. */
export function conditionTime(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * Sets a condition like apimachinery's meta.SetStatusCondition: lastTransitionTime moves only when the
 * status changes, the order of types stays stable, the message is cut to its bound. Returns a new list.
 */
export function setCondition(
  conditions: readonly Condition[],
  next: { type: ConditionType; status: ConditionStatus; reason: Reason; message?: string },
  generation: number,
  now: Date,
): Condition[] {
  const existing = getCondition(conditions, next.type);
  const cond: Condition = {
    type: next.type,
    status: next.status,
    reason: next.reason,
    message: truncate(next.message ?? "", STATUS_LIMITS.message),
    lastTransitionTime:
      existing && existing.status === next.status ? existing.lastTransitionTime : conditionTime(now),
    observedGeneration: generation,
  };
  if (!existing) return [...conditions, cond];
  return conditions.map((c) => (c.type === next.type ? cond : c));
}
