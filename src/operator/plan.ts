/**
 * What one reconcile step of a LivySession sees and what it decides, as plain data. `decide()` (decide.ts)
 * maps an Observation to a Plan without I/O; `observe` (gather.ts) builds the Observation and `execute`
 * (execute.ts) carries the Plan out, in the one order that survives a crash between any two of its writes.
 */
import type { LivySession, LivySessionStatus } from "../api/index.ts";
import type { KubeObject } from "../kube/client.ts";
import type { LivyAuth } from "../livy/client.ts";
import type { CreateSessionRequest, Session, Statement } from "../livy/protocol.ts";
import type { OperatorConfig } from "./config.ts";
import type { DeploymentLike, PodLike } from "./observe.ts";
import type { PooledServer } from "./pool.ts";

/** The owned objects, by kind. */
export const OWNED_KINDS = [
  "deployment",
  "service",
  "configMap",
  "networkPolicy",
  "serviceAccount",
  "roleBinding",
] as const;
export type OwnedKind = (typeof OWNED_KINDS)[number];
/**
 * Kinds applied before the others (execute.ts): the driver's ServiceAccount must exist when the
 * Deployment's ReplicaSet creates the pod that runs as it, or the pod is refused (ReplicaFailure).
 */
export const APPLIED_FIRST: readonly DesiredObject["kind"][] = ["serviceAccount", "roleBinding"];

export interface OwnedObjects {
  deployment?: (KubeObject & DeploymentLike) | undefined;
  service?: KubeObject | undefined;
  configMap?: KubeObject | undefined;
  networkPolicy?: KubeObject | undefined;
  serviceAccount?: KubeObject | undefined;
  roleBinding?: (KubeObject & { roleRef?: { name?: string } }) | undefined;
}

/** The operator settings that shape decisions. */
export type DecideSettings = Pick<
  OperatorConfig,
  | "defaultImage"
  | "defaultImagePullPolicy"
  | "defaultResources"
  | "defaultServer"
  | "defaultSessionConf"
  | "serverUrlTemplate"
  | "networkPolicy"
  | "networkPolicyOperatorNamespace"
  | "sparkDriverClusterRole"
  | "sessionPollIntervalMs"
  | "livyFailureThreshold"
  | "livyFailureWindowMs"
>;

/** A Livy request's outcome as data: the value, or what went wrong. */
export type LivyAnswer<T> = { ok: true; value: T } | { ok: false; error: LivyFailure };

export interface LivyFailure {
  /**
   * gone: Livy does not know the session (404); unreachable: refused, reset, no route, DNS; timeout: no
   * answer in time; http: another error status; protocol: an answer that is not Livy's.
   */
  kind: "gone" | "unreachable" | "timeout" | "http" | "protocol";
  message: string;
  status?: number;
  /** Livy's 400 "too many sessions are being created": it is busy, try again. */
  tooManySessions?: boolean;
}

/** Activity on the Livy server, as far as the operator counts it. */
export interface Activity {
  /** Something runs now (a statement running or waiting, a busy session). */
  busy: boolean;
  /** The latest statement start or completion seen, epoch ms (0: none). */
  latestMs: number;
}

/** What decide() asks of Livy when it cannot decide without it. */
export interface LivyQuery {
  url: string;
  auth?: LivyAuth | undefined;
  /** Read this session; else look the attempt's session up by name (null when there is none). */
  sessionId?: number | undefined;
  sessionName?: string | undefined;
  /** Also read the activity on the server, when the session is usable. */
  activity: boolean;
  /** The LivySession asking: the Livy sessions opened for other LivySessions are not its activity. */
  owner: { namespace: string; name: string };
  /** Before Ready: also look up the warm-up statement (by its code) in the session, when it is usable. */
  warmup?: { code: string } | undefined;
}

export interface LivyObservation {
  url: string;
  session: LivyAnswer<Session | null>;
  activity?: LivyAnswer<Activity> | undefined;
  /** The warm-up statement found in the session (null: not submitted yet), when asked for. */
  warmup?: LivyAnswer<Statement | null> | undefined;
}

export type AuthObservation =
  | { state: "none" }
  | { state: "ok"; auth: LivyAuth }
  | { state: "invalid"; message: string };

/**
 * What the operator remembers of a LivySession between passes, beside its status. Lost on a restart, which
 * only delays a failure: a new operator counts afresh.
 */
export interface Memory {
  /** Consecutive failed looks at a Ready session's Livy server: since when (epoch ms), how many, the last error. */
  livyFailures?: { since: number; count: number; last: string };
  /** Tries to delete the Livy session of a LivySession being deleted. */
  deleteAttempts?: number;
  /**
   * The Livy session (`<id>/<name>`) the warm-up statement was last submitted to: the first submission is
   * looked at again at once, a later one (Livy not listing it yet) a poll later.
   */
  warmupSubmitted?: string;
  /**
   * The Livy session (`<id>/<name>`) this operator last saw starting, before its warm-up: the look that finds
   * it usable submits the warm-up without searching for it first (decide.ts).
   */
  sawStarting?: string;
}

export interface Observation {
  /** Epoch ms. */
  now: number;
  resource: LivySession;
  settings: DecideSettings;
  owned: OwnedObjects;
  /** The pods of the server's Deployment. */
  pods: PodLike[];
  auth: AuthObservation;
  /** Livy's answers, once decide() asked for them. */
  livy?: LivyObservation | undefined;
  /** The API server refused (422) an owned object built from the spec, with its message. */
  refused?: string | undefined;
  /**
   * The per-session credential its server demands (derived from the key shared with the gateway), when
   * the operator has the key and the LivySession brings no authentication of its own.
   */
  credential?: string | undefined;
  memory: Memory;
  /**
   * LivySessions whose Livy session is starting or warming up, polled tightly (this one included when it is): sets how
   * tightly (decide.ts startingPollMs). Absent: 1.
   */
  starting?: number | undefined;
  /** LivySessions Ready (this one included when it is): sets how often each is polled (decide.ts servingPollMs). Absent: 1. */
  serving?: number | undefined;
  /**
   * The LivySessionPool whose template this LivySession matches (docs/warm-pool.md), with its servers as
   * observed: a start takes a warm one instead of deploying its own. Absent: no pool serves it.
   */
  pool?: PoolObservation | undefined;
  /**
   * With status.server: the pooled LivySession that started that server, while it still exists (the
   * hand-over removes it once the record is written; a pass killed in between leaves it to remove).
   */
  handedFrom?: { name: string; deleting: boolean } | undefined;
}

export interface PoolObservation {
  name: string;
  servers: PooledServer[];
  /** Per server id: the pooled LivySession holding it, what the hand-over takes from it. */
  members: Record<string, PoolMember>;
}

export interface PoolMember {
  /** The pooled LivySession's uid: the server's credential derives from it (status.serverUID). */
  uid: string;
  status: LivySessionStatus;
  /** The server's Deployment's resourceVersion: the compare-and-swap of the claim. */
  deploymentVersion?: string | undefined;
  /** Which of the server's objects exist (adopted at the hand-over). */
  owned: OwnedKind[];
  /** The server was given a per-session credential Secret. */
  credential: boolean;
}

/**
 * An owned object to apply, as built from the spec; or the credential's Secret, which is not cached (a
 * cache of Secrets would need list and watch on every Secret): it is applied with the Deployment, and when
 * the Deployment's credential-hash annotation says its server has another one.
 */
export interface DesiredObject {
  kind: OwnedKind | "credential";
  object: { metadata: { name: string; namespace: string; annotations: Record<string, string> } };
}

export interface PlannedEvent {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

export interface LogLine {
  level: "debug" | "info" | "warn";
  msg: string;
  fields?: Record<string, unknown>;
}

/**
 * What to do, carried out by execute() in this order, whichever fields are set:
 * finalizer added → pooled server claimed → its objects adopted → Livy session deleted → status written →
 * pooled LivySession deleted → owned objects deleted → owned objects applied →
 * Livy session created → finalizer removed → events; a warm-up statement goes out with the status write, and so
 * does the Livy session's creation once an earlier write recorded the attempt. The order is what makes a crash
 * anywhere harmless: the Livy session goes before the record that names it; the record of a new attempt is
 * written before the Livy session named after it is created (so a crash after the POST adopts it); the record of a
 * teardown is written before the server goes (so a half-removed server is never read as lost).
 */
export interface Plan {
  finalizer?: "add" | "remove";
  /**
   * Take a warm pooled server (docs/warm-pool.md, step 1): one merge patch of its Deployment carrying the
   * resourceVersion observed (409 when another took it first), labelling it claimed by this LivySession,
   * making it the controller and setting the spec hash its own desired Deployment has.
   */
  claim?: {
    server: string;
    pool: string;
    resourceVersion: string;
    owner: OwnerRefLike;
    specHash: string;
  };
  /**
   * Step 2, first of all (before the status names the server): the server's other objects get this
   * LivySession as owner (and the spec hash its own desired object has). Idempotent.
   */
  adopt?: {
    server: string;
    owner: OwnerRefLike;
    objects: Array<{ kind: OwnedKind | "credential"; specHash?: string | undefined }>;
  };
  /** After the status write: delete the pooled LivySession whose server was taken (its finalizer stands down). */
  deletePooled?: string;
  /** After the credential's Secret was applied: record its digest on the Deployment (metadata only). */
  credentialHash?: string;
  /** By id; or by name, when the session may exist but its id was not recorded (deleted if found). */
  deleteLivySession?: { url: string; auth?: LivyAuth | undefined; id?: number; name?: string };
  /** The whole next status; written (status subresource) only when it differs from the stored one. */
  status?: LivySessionStatus;
  deleteOwned?: Array<OwnedKind | "credential">;
  apply?: DesiredObject[];
  /**
   * `recorded`: the attempt's record (startTime, restarts, serverURL: the session's name and where it is) was
   * stored by an earlier status write, so the POST goes out together with this plan's status write rather
   * than after it. The pass still waits for the POST when the write fails: a retry while it is in flight would
   * not find the session by name yet and POST a second one.
   */
  createLivySession?: {
    url: string;
    auth?: LivyAuth | undefined;
    body: CreateSessionRequest;
    recorded?: boolean;
  };
  /**
   * The warm-up statement: submitted first on its own (the next step records WarmingUp, or Ready when it
   * has ended by then); submitted again with the status write when Livy did not list it (both at once:
   * it is found again by its code, so no order loses or duplicates it across a crash).
   */
  submitWarmup?: { url: string; auth?: LivyAuth | undefined; sessionId: number; code: string };
  /** Recorded after the status write succeeded. */
  events?: PlannedEvent[];
  /** undefined: nothing scheduled; 0: decide again at once (within the same pass). */
  requeueAfterMs?: number;
  /** The requeue is a Ready session's poll (activity, idle deadline): it waits behind other work (queue.ts). */
  routine?: boolean;
  memory?: Memory;
  metrics?: { demandToReadySeconds?: number; idleTeardown?: boolean };
  log?: LogLine[];
}

export interface OwnerRefLike {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid: string;
}

export type Decision = { observe: LivyQuery } | { plan: Plan };
