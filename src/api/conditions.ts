/**
 * Condition types, reasons and phases of a LivySession's status. The reconciler sets conditions from what it
 * observes; `phase` is derived from them for `kubectl get` only, so nothing should branch on it.
 */

export const ConditionType = {
  /** The Livy server (Deployment + Service) is available. */
  ServerReady: "ServerReady",
  /** The Livy interactive session exists and accepts statements (Livy state idle or busy). */
  SessionReady: "SessionReady",
  /** ServerReady and SessionReady: the endpoints in status can be used. */
  Ready: "Ready",
  /** True while the server is torn down because nothing ran for idleTimeout; the next demand wakes it. */
  Idle: "Idle",
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];
export const CONDITION_TYPES: readonly ConditionType[] = Object.values(ConditionType);

/**
 * Reasons (CamelCase, as metav1.Condition requires). Each says which condition(s) carry it and why, so a
 * user reading `kubectl describe` knows what happened and what comes next.
 */
export const Reason = {
  /** Ready/ServerReady False: spec.suspend is true; nothing is deployed until it is false again. */
  Suspended: "Suspended",
  /** ServerReady False: the Deployment was applied and its pod is not available yet. */
  Deploying: "Deploying",
  /** ServerReady True: the Deployment is available and the Service routes to it. */
  ServerAvailable: "ServerAvailable",
  /** ServerReady False: a server that was available is not any more (pod crashed or not ready). */
  ServerUnavailable: "ServerUnavailable",
  /** ServerReady/Ready False: the server's Deployment or pod disappeared (deleted, evicted). */
  ServerLost: "ServerLost",
  /** Ready False: a start attempt is under way (server deploying or Livy session starting). */
  Starting: "Starting",
  /** SessionReady False: the Livy session waits for the server to become available. */
  WaitingForServer: "WaitingForServer",
  /** ServerReady/Ready False: the Livy image cannot be pulled (ErrImagePull, ImagePullBackOff, bad name). */
  ImagePullFailed: "ImagePullFailed",
  /** ServerReady/Ready False: the Livy pod cannot be scheduled (resources, node selector, taints). */
  Unschedulable: "Unschedulable",
  /** Ready False: not Ready within spec.startupTimeout of the start of this attempt. */
  StartupTimeout: "StartupTimeout",
  /** SessionReady False: the Livy session was requested and is starting (not_started, starting). */
  SessionStarting: "SessionStarting",
  /** SessionReady/Ready True: the Livy session is idle, waiting for statements. */
  SessionIdle: "SessionIdle",
  /** SessionReady/Ready True: the Livy session is running a statement. */
  SessionBusy: "SessionBusy",
  /** SessionReady/Ready False: the Livy session ended (dead, killed, error, success) or was deleted. */
  SessionDead: "SessionDead",
  /** SessionReady/Ready False: Livy no longer knows the session (HTTP 404), e.g. after a server restart. */
  SessionLost: "SessionLost",
  /** SessionReady False: Livy answered with an error (HTTP 4xx/5xx, e.g. too many sessions). */
  LivyError: "LivyError",
  /** SessionReady False: the Livy server could not be reached (connection refused, reset, timeout). */
  LivyUnreachable: "LivyUnreachable",
  /** Idle True, Ready False: torn down after spec.idleTimeout without activity. */
  IdleTimeout: "IdleTimeout",
  /** Idle False: not idle (yet): the session is in use or being started. */
  Active: "Active",
  /** Idle False: woken by a new value of the livy.dev/demanded-at annotation. */
  Demanded: "Demanded",
  /** Idle False: a spec change (e.g. suspend turning false) restarted a parked session. */
  SpecChanged: "SpecChanged",
  /** Ready False: failurePolicy Recover is recreating the server or the Livy session (status.restarts counts). */
  Recovering: "Recovering",
  /** Ready False, phase Failed: failurePolicy Recover gave up after spec.maxRestarts restarts. */
  RestartLimitReached: "RestartLimitReached",
  /** Ready False: the LivySession is being deleted; its Livy session is deleted before the finalizer goes. */
  Deleting: "Deleting",
  /** Ready False: the auth Secret is missing or lacks the keys its type needs (the keys' values are never shown). */
  AuthSecretInvalid: "AuthSecretInvalid",
  /**
   * Ready False, phase Failed: the object read from the cluster does not parse (e.g. written under an older
   * schema), or the API server refuses an object built from the spec as invalid (HTTP 422, e.g. pod
   * annotations over 256 KiB in total, a request above its limit); nothing retries until the spec changes.
   */
  InvalidSpec: "InvalidSpec",
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

/**
 * The phase shown by kubectl, derived from the conditions:
 * - Pending: demanded, nothing deployed yet; Starting: server deploying or Livy session starting;
 * - Ready: Ready=True; Idle: Idle=True (torn down, resource kept); Suspended: spec.suspend;
 * - Failed: a FailFast failure, StartupTimeout, or RestartLimitReached; Terminating: being deleted.
 */
export const PHASES = ["Pending", "Starting", "Ready", "Idle", "Suspended", "Failed", "Terminating"] as const;
export type Phase = (typeof PHASES)[number];

/** The condition reason grammar of metav1.Condition. */
export const REASON_PATTERN = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";
