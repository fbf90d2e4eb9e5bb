import { Reason } from "../api/index.ts";
import { isSessionStarting, isSessionTerminal } from "../livy/protocol.ts";

/**
 * Pure readings of the world: what a Deployment and its Pods say about a Livy server. The reconciler
 * decides from these; unit tests feed them tables of objects.
 */

export interface DeploymentLike {
  metadata?: { generation?: number; deletionTimestamp?: string | Date };
  spec?: { replicas?: number };
  status?: {
    observedGeneration?: number;
    availableReplicas?: number;
    readyReplicas?: number;
    updatedReplicas?: number;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
  };
}

export interface PodLike {
  metadata?: { name?: string; creationTimestamp?: string | Date; deletionTimestamp?: string | Date };
  status?: {
    phase?: string;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
    containerStatuses?: Array<{
      name: string;
      ready?: boolean;
      restartCount?: number;
      state?: {
        waiting?: { reason?: string; message?: string };
        running?: { startedAt?: string | Date };
        terminated?: { reason?: string; exitCode?: number; message?: string };
      };
      lastState?: { terminated?: { reason?: string; exitCode?: number; message?: string } };
    }>;
  };
}

export type ServerFailureReason = Extract<
  Reason,
  "ImagePullFailed" | "Unschedulable" | "CrashLooping" | "ContainerConfigError" | "ReplicaFailure"
>;

export type ServerObservation =
  | { state: "Missing" }
  | { state: "Terminating" }
  | { state: "Progressing"; message: string }
  | { state: "Available" }
  | { state: "Failed"; reason: ServerFailureReason; message: string };

const IMAGE_PULL = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "RegistryUnavailable",
]);
const CONFIG_ERRORS = new Set(["CreateContainerConfigError", "CreateContainerError", "RunContainerError"]);

export function observeServer(deployment: DeploymentLike | undefined, pods: PodLike[]): ServerObservation {
  if (!deployment) return { state: "Missing" };
  if (deployment.metadata?.deletionTimestamp) return { state: "Terminating" };
  // Pod problems first: a Deployment stays "progressing" for minutes while its pod cannot pull its image.
  for (const pod of pods) {
    if (pod.metadata?.deletionTimestamp) continue;
    for (const cs of pod.status?.containerStatuses ?? []) {
      const waiting = cs.state?.waiting;
      if (waiting?.reason && IMAGE_PULL.has(waiting.reason)) {
        return {
          state: "Failed",
          reason: Reason.ImagePullFailed,
          message: `${waiting.reason}: ${waiting.message ?? "cannot pull the Livy image"}`,
        };
      }
      if (waiting?.reason === "CrashLoopBackOff") {
        const last = cs.lastState?.terminated;
        const detail = last
          ? ` (last exit ${last.exitCode ?? "?"}${last.reason ? `, ${last.reason}` : ""})`
          : "";
        return {
          state: "Failed",
          reason: Reason.CrashLooping,
          message: `the Livy server keeps crashing${detail}`,
        };
      }
      if (waiting?.reason && CONFIG_ERRORS.has(waiting.reason)) {
        return {
          state: "Failed",
          reason: Reason.ContainerConfigError,
          message: `${waiting.reason}: ${waiting.message ?? ""}`.trim(),
        };
      }
    }
    const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
    if (scheduled?.status === "False" && scheduled.reason === "Unschedulable") {
      return {
        state: "Failed",
        reason: Reason.Unschedulable,
        message: scheduled.message ?? "no node can run the Livy server pod",
      };
    }
  }
  const failure = deployment.status?.conditions?.find(
    (c) => c.type === "ReplicaFailure" && c.status === "True",
  );
  // A pod creation the API server could not complete (etcd timing out under load, a restart) is retried by
  // kube-controller-manager and the condition clears when it succeeds: still progressing, not a refusal
  // such as an exceeded quota or a policy (a loaded test bed failed a LivySession on "etcdserver: request
  // timed out").
  if (failure && TRANSIENT_API_ERROR.test(failure.message ?? ""))
    return { state: "Progressing", message: `the Livy server pod is not created yet: ${failure.message}` };
  if (failure)
    return {
      state: "Failed",
      reason: Reason.ReplicaFailure,
      message: failure.message ?? failure.reason ?? "replica failure",
    };
  const st = deployment.status ?? {};
  const current = (st.observedGeneration ?? 0) >= (deployment.metadata?.generation ?? 0);
  if (current && (st.availableReplicas ?? 0) >= 1 && (st.updatedReplicas ?? 0) >= 1)
    return { state: "Available" };
  // Kubernetes rewrites the Progressing condition's message as a rollout moves on ("Created new replica
  // set", "ReplicaSet ... is progressing"); mirrored into status, each rewording was a status write of its
  // own (2-3 per start, nothing a user acts on). Only a rollout past its progress deadline (status False)
  // says something new: its message is kept.
  const progressing = st.conditions?.find((c) => c.type === "Progressing");
  if (progressing?.status === "False" && progressing.message)
    return { state: "Progressing", message: progressing.message };
  return {
    state: "Progressing",
    message: `waiting for the Livy server pod (${st.readyReplicas ?? 0}/1 ready)`,
  };
}

/** API server answers that say "try again", as kube-controller-manager records them in ReplicaFailure. */
const TRANSIENT_API_ERROR =
  /etcdserver: (request timed out|leader changed|too many requests)|Timeout: request did not complete|the server was unable to return a response|the server is currently unable to handle the request|the server has received too many requests|context deadline exceeded|connection refused/i;

export interface LivyServerActivity {
  /** The LivySession asking. */
  owner: { namespace: string; name: string };
  /** Every Livy session on the server (its own and any other), with its name and state. */
  sessions: ReadonlyArray<{ id: number; state: string; name?: string | null | undefined }>;
  /** The newest statement of each usable session, by session id (none: it ran nothing yet). */
  newest: ReadonlyMap<
    number,
    { state: string; started?: number | null; completed?: number | null } | undefined
  >;
  /** Every batch on the server, with its state. */
  batches: ReadonlyArray<{ id: number; state: string }>;
}

/**
 * Whether anything runs on a Livy server, and the latest statement start or completion: what keeps it
 * from idling out. Every Livy session and batch on the server counts, not only the LivySession's own: a
 * teardown ends them all (other sessions opened on the endpoint, batches submitted to it). Only the Livy
 * sessions the operator opened for another LivySession are left out: on a server several LivySessions
 * share (a --server-url-template without {name}), those are that LivySession's activity.
 */
export function observeActivity(a: LivyServerActivity): { busy: boolean; latestMs: number } {
  const counted = a.sessions.filter((s) => !ofAnotherLivySession(s.name, a.owner));
  let busy = counted.some((s) => s.state === "busy" || isSessionStarting(s.state));
  busy ||= a.batches.some((b) => !isSessionTerminal(b.state));
  const ids = new Set(counted.map((s) => s.id));
  let latestMs = 0;
  for (const [id, st] of a.newest) {
    if (!st || !ids.has(id)) continue;
    if (st.state === "waiting" || st.state === "running" || st.state === "cancelling") busy = true;
    latestMs = Math.max(latestMs, st.started ?? 0, st.completed ?? 0);
  }
  return { busy, latestMs };
}

/** `<namespace>.<name>.<attempt>.<restart>[.<digest>]`: the names the operator gives Livy sessions. */
const OPERATOR_SESSION_NAME = /^([a-z0-9-]+)\.([a-z0-9-]+)\.[0-9a-z]+\.\d+(\.[0-9a-f]{8})?$/;

/**
 * Whether a Livy session is one the operator opened for another LivySession (by its name): not this one's
 * activity. gather.ts asks for no statements of such sessions: on a server many LivySessions share, that
 * was up to 100 requests per pass for answers observeActivity drops.
 */
export function ofAnotherLivySession(
  name: string | null | undefined,
  owner: { namespace: string; name: string },
): boolean {
  const m = OPERATOR_SESSION_NAME.exec(name ?? "");
  return m !== null && (m[1] !== owner.namespace || m[2] !== owner.name);
}

/** Whether `t` is after `ms`; an unknown time is not (no evidence). */
const after = (t: string | Date | undefined, ms: number): boolean =>
  t !== undefined && new Date(t).getTime() > ms;

/**
 * Whether the pod a Ready Livy session lives in is gone, and how. The Livy server keeps its sessions in
 * memory and runs their Spark drivers (local or client mode) as its children, so a session ends with the
 * Livy process that held it. `readyMs` is when the session was seen Ready: the pod that holds it was created
 * and its container started before then (a Livy server and a Spark session start in between, tens of
 * seconds, so clock differences between the API server, the kubelet and the operator do not matter), and
 * it survives while it is not being deleted, has not ended and its containers run. Returns why no pod
 * survives, given positive evidence (a pod being deleted or ended, a container stopped or started again
 * after `readyMs`, a pod created after it); else null. No pods at all is no evidence (an informer's list
 * between a deletion and the replacement): Livy's answers decide then, as for anything short of evidence.
 */
export function serverPodLost(pods: PodLike[], readyMs: number): string | null {
  let evidence: string | null = null;
  for (const pod of pods) {
    const name = pod.metadata?.name ?? "?";
    const statuses = pod.status?.containerStatuses ?? [];
    const ended = pod.status?.phase === "Failed" || pod.status?.phase === "Succeeded";
    const stopped = statuses.find(
      (c) => c.state?.running === undefined || after(c.state.running.startedAt, readyMs),
    );
    if (
      !pod.metadata?.deletionTimestamp &&
      !ended &&
      !after(pod.metadata?.creationTimestamp, readyMs) &&
      statuses.length > 0 &&
      !stopped
    )
      return null; // this pod may hold the session
    if (pod.metadata?.deletionTimestamp) evidence ??= `the Livy server's pod ${name} is being deleted`;
    else if (ended) evidence ??= `the Livy server's pod ${name} ended (${pod.status?.phase})`;
    else if (after(pod.metadata?.creationTimestamp, readyMs))
      evidence ??= `pod ${name} replaced the Livy server's pod`;
    else if (stopped && ((stopped.restartCount ?? 0) > 0 || stopped.state?.terminated)) {
      const last = stopped.state?.terminated ?? stopped.lastState?.terminated;
      const detail = last ? ` (exit ${last.exitCode ?? "?"}${last.reason ? `, ${last.reason}` : ""})` : "";
      evidence ??= `the Livy server's container in pod ${name} stopped${detail}`;
    }
  }
  return evidence;
}
