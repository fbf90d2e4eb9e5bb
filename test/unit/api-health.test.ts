import { describe, expect, it } from "vitest";
import { argoCdHealthLua, fluxHealthCheckExprs, livySessionHealth } from "../../src/api/health.ts";
import { FAILURE_REASONS } from "../../src/api/status.ts";

const cond = (type: string, status: "True" | "False", reason: string, message = "") => ({
  type,
  status,
  reason,
  message,
  lastTransitionTime: "2026-01-01T00:00:00Z",
});
const obj = (conditions: ReturnType<typeof cond>[], extra: Record<string, unknown> = {}) => ({
  metadata: { generation: 1, ...extra },
  status: { observedGeneration: 1, conditions },
});

describe("livySessionHealth", () => {
  it.each([
    ["Ready", obj([cond("Ready", "True", "Ready", "up")]), "Healthy"],
    [
      "Idle",
      obj([cond("Ready", "False", "IdleTimeout"), cond("Idle", "True", "IdleTimeout", "torn down")]),
      "Healthy",
    ],
    ["Suspended", obj([cond("Ready", "False", "Suspended"), cond("Idle", "True", "Suspended")]), "Suspended"],
    ["Failed", obj([cond("Ready", "False", "SessionDead", "dead")]), "Degraded"],
    ["Starting", obj([cond("Ready", "False", "Starting")]), "Progressing"],
    ["Recovering", obj([cond("Ready", "False", "Recovering")]), "Progressing"],
    ["no status yet", { metadata: { generation: 1 } }, "Progressing"],
    [
      "a newer generation",
      { ...obj([cond("Ready", "True", "Ready")]), metadata: { generation: 2 } },
      "Progressing",
    ],
    [
      "being deleted",
      obj([cond("Ready", "True", "Ready")], { deletionTimestamp: "2026-01-01T00:00:00Z" }),
      "Progressing",
    ],
  ])("%s → %s", (_what, o, health) => {
    expect(livySessionHealth(o).status).toBe(health);
  });

  it("Argo CD's script and Flux's expressions list every failure reason of the status contract", () => {
    for (const r of FAILURE_REASONS) {
      expect(argoCdHealthLua()).toContain(`  ${r} = true,`);
      expect(fluxHealthCheckExprs().failed).toContain(`'${r}'`);
    }
  });
});
