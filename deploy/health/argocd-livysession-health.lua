-- Argo CD health check for livy.dev/LivySession, generated from src/api/health.ts: do not edit.
-- Idle (torn down after idleTimeout, woken by the next demand) is Healthy; spec.suspend is Suspended.
local failures = {
  ContainerConfigError = true,
  CrashLooping = true,
  ImagePullFailed = true,
  InvalidSpec = true,
  LivyError = true,
  LivyUnreachable = true,
  ReplicaFailure = true,
  RestartLimitReached = true,
  ServerLost = true,
  SessionDead = true,
  SessionLost = true,
  StartupTimeout = true,
  Unschedulable = true,
  WarmupFailed = true,
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
