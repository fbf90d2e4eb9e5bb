import type { Condition } from "./observe.ts";

export type Phase = "Pending" | "Starting" | "Ready" | "Idle" | "Suspended" | "Failed" | "Terminating";

/** Ready=False with one of these reasons is a failure: nothing restarts until a new demand. */
export const FAILURE_REASONS = new Set([
  "ImagePullFailed",
  "Unschedulable",
  "CrashLooping",
  "ContainerConfigError",
  "ReplicaFailure",
  "StartupTimeout",
  "SessionDead",
  "SessionLost",
  "ServerLost",
  "LivyUnreachable",
  "LivyError",
  "RestartLimitReached",
  "InvalidSpec",
]);

/** The phase shown by kubectl, derived from the conditions (the conditions are the API). */
export function derivePhase(conditions: Condition[] | undefined, deleting: boolean): Phase {
  if (deleting) return "Terminating";
  const get = (t: string) => conditions?.find((c) => c.type === t);
  const ready = get("Ready");
  const idle = get("Idle");
  if (ready?.status === "True") return "Ready";
  if (idle?.status === "True") return idle.reason === "Suspended" ? "Suspended" : "Idle";
  if (ready && FAILURE_REASONS.has(ready.reason)) return "Failed";
  if (ready || get("ServerReady")) return "Starting";
  return "Pending";
}
