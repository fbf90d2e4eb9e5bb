/**
 * A LivySession's health as GitOps tools read it. An Idle LivySession (its server torn down after
 * idleTimeout, waiting for the next demand) is the healthy steady state of a lazy session, not a failure,
 * though its Ready condition is False: a health check that reads Ready alone reports every idle worksheet as
 * broken. The rule, from the status contract (status.ts):
 *
 * | status.conditions                                   | health      | kstatus / Flux |
 * | --------------------------------------------------- | ----------- | -------------- |
 * | being deleted                                       | Progressing | InProgress (Terminating) |
 * | status.observedGeneration ≠ metadata.generation     | Progressing | InProgress     |
 * | Ready=True                                          | Healthy     | Current        |
 * | Idle=True, reason IdleTimeout                       | Healthy     | Current        |
 * | Idle=True, reason Suspended (spec.suspend)          | Suspended   | Current        |
 * | Ready=False with a failure reason (phase Failed)    | Degraded    | Failed         |
 * | anything else (Pending, Starting, Recovering, ...)  | Progressing | InProgress     |
 *
 * The same rule is generated for Argo CD (a Lua health check) and Flux (Kustomization healthCheckExprs);
 * `npm run generate` writes both under deploy/health/, and a test runs them with Argo CD's Lua VM and Flux's
 * CEL evaluator on LivySessions the operator wrote.
 */
import { FAILURE_REASONS, getCondition, isFailureReason } from "./status.ts";

export type Health = "Healthy" | "Progressing" | "Degraded" | "Suspended";

interface HealthInput {
  metadata?: { generation?: number; deletionTimestamp?: string | Date | undefined } | undefined;
  status?:
    | {
        observedGeneration?: number | undefined;
        conditions?:
          | ReadonlyArray<{ type: string; status: string; reason: string; message?: string }>
          | undefined;
      }
    | null
    | undefined;
}

export function livySessionHealth(obj: HealthInput): { status: Health; message: string } {
  if (obj.metadata?.deletionTimestamp) return { status: "Progressing", message: "being deleted" };
  const st = obj.status;
  const generation = obj.metadata?.generation;
  if (
    generation !== undefined &&
    st?.observedGeneration !== undefined &&
    st.observedGeneration !== generation
  )
    return {
      status: "Progressing",
      message: `generation ${generation} not observed yet (status is of ${st.observedGeneration})`,
    };
  const ready = getCondition(st?.conditions as never, "Ready");
  const idle = getCondition(st?.conditions as never, "Idle");
  if (ready?.status === "True") return { status: "Healthy", message: ready.message ?? "" };
  if (idle?.status === "True") {
    return idle.reason === "Suspended"
      ? { status: "Suspended", message: idle.message || "spec.suspend is true" }
      : {
          status: "Healthy",
          message: `Idle: ${idle.message || "torn down after idleTimeout; the next demand starts it"}`,
        };
  }
  if (ready && isFailureReason(ready.reason))
    return { status: "Degraded", message: `${ready.reason}: ${ready.message ?? ""}` };
  return {
    status: "Progressing",
    message: ready ? `${ready.reason}: ${ready.message ?? ""}` : "waiting for the operator",
  };
}

const failureList = () => [...FAILURE_REASONS].sort();

/** The Argo CD health check (`resource.customizations.health.livy.dev_LivySession` in argocd-cm). */
export function argoCdHealthLua(): string {
  const failures = failureList()
    .map((r) => `  ${r} = true,`)
    .join("\n");
  return `-- Argo CD health check for livy.dev/LivySession, generated from src/api/health.ts: do not edit.
-- Idle (torn down after idleTimeout, woken by the next demand) is Healthy; spec.suspend is Suspended.
local failures = {
${failures}
}
local hs = { status = "Progressing", message = "waiting for the operator" }
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.message = "being deleted"
  return hs
end
local st = obj.status
if st == nil then
  return hs
end
if obj.metadata ~= nil and obj.metadata.generation ~= nil and st.observedGeneration ~= nil
    and st.observedGeneration ~= obj.metadata.generation then
  hs.message = "generation " .. obj.metadata.generation .. " not observed yet"
  return hs
end
local ready = nil
local idle = nil
if st.conditions ~= nil then
  for _, c in ipairs(st.conditions) do
    if c.type == "Ready" then
      ready = c
    elseif c.type == "Idle" then
      idle = c
    end
  end
end
if ready ~= nil and ready.status == "True" then
  return { status = "Healthy", message = ready.message or "" }
end
if idle ~= nil and idle.status == "True" then
  if idle.reason == "Suspended" then
    return { status = "Suspended", message = idle.message or "spec.suspend is true" }
  end
  return { status = "Healthy", message = "Idle: " .. (idle.message or "") }
end
if ready ~= nil and failures[ready.reason] then
  return { status = "Degraded", message = ready.reason .. ": " .. (ready.message or "") }
end
if ready ~= nil then
  hs.message = ready.reason .. ": " .. (ready.message or "")
end
return hs
`;
}

/** Flux (≥ 2.5) Kustomization `spec.healthCheckExprs` entry: CEL over the object. */
export function fluxHealthCheckExprs(): Record<string, string> {
  const conds = "status.?conditions.orValue([])";
  const failures = failureList()
    .map((r) => `'${r}'`)
    .join(", ");
  return {
    apiVersion: "livy.dev/v1alpha1",
    kind: "LivySession",
    inProgress: `has(metadata.deletionTimestamp)`,
    failed: `${conds}.exists(c, c.type == 'Ready' && c.status == 'False' && c.reason in [${failures}])`,
    current: `${conds}.exists(c, (c.type == 'Ready' || c.type == 'Idle') && c.status == 'True')`,
  };
}
