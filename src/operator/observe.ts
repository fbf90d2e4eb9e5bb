import { Reason } from "../api/index.ts";

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
  metadata?: { name?: string; deletionTimestamp?: string | Date };
  status?: {
    phase?: string;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
    containerStatuses?: Array<{
      name: string;
      ready?: boolean;
      restartCount?: number;
      state?: {
        waiting?: { reason?: string; message?: string };
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
  const progressing = st.conditions?.find((c) => c.type === "Progressing");
  return {
    state: "Progressing",
    message: progressing?.message ?? `waiting for the Livy server pod (${st.readyReplicas ?? 0}/1 ready)`,
  };
}
