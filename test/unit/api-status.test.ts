import { describe, expect, it } from "vitest";
import {
  ALL_REASONS,
  type Condition,
  ConditionType,
  demandToken,
  derivePhase,
  FAILURE_REASONS,
  failureOf,
  isFailed,
  isIdle,
  isReady,
  isSuspended,
  phaseOf,
  REASON_PATTERN,
  REASONS,
  Reason,
  readyCondition,
  STATUS_LIMITS,
  setCondition,
  statusSchema,
  truncate,
} from "../../src/api/index.ts";

const cond = (type: string, status: "True" | "False", reason: string): Condition => ({
  type,
  status,
  reason,
  message: "",
  lastTransitionTime: "2026-01-01T00:00:00Z",
});
const obj = (...conditions: Condition[]) => ({ status: { conditions } });

describe("the status contract", () => {
  it("declares reasons that metav1.Condition accepts, each with a condition and a meaning", () => {
    const re = new RegExp(REASON_PATTERN);
    for (const r of ALL_REASONS) {
      expect(re.test(r), r).toBe(true);
      expect(Reason[r]).toBe(r);
      expect(REASONS[r].on.length, r).toBeGreaterThan(0);
      expect(REASONS[r].doc.length, r).toBeGreaterThan(10);
    }
  });

  it("has the failures that park a session, and only those", () => {
    expect([...FAILURE_REASONS].sort()).toEqual(
      [
        "ContainerConfigError",
        "CrashLooping",
        "ImagePullFailed",
        "InvalidSpec",
        "LivyError",
        "LivyUnreachable",
        "ReplicaFailure",
        "RestartLimitReached",
        "ServerLost",
        "SessionDead",
        "SessionLost",
        "StartupTimeout",
        "Unschedulable",
        "WarmupFailed",
      ].sort(),
    );
    for (const r of FAILURE_REASONS) expect(REASONS[r as Reason].on).toContain(ConditionType.Ready);
  });
});

describe("setCondition", () => {
  const t0 = new Date("2026-01-01T00:00:00Z");
  const t1 = new Date("2026-01-01T00:01:00Z");
  it("moves lastTransitionTime only when the status changes", () => {
    let c = setCondition([], { type: "Ready", status: "False", reason: "Starting" }, 1, t0);
    c = setCondition(c, { type: "Ready", status: "False", reason: "Recovering", message: "m" }, 2, t1);
    expect(c).toEqual([
      {
        type: "Ready",
        status: "False",
        reason: "Recovering",
        message: "m",
        lastTransitionTime: "2026-01-01T00:00:00Z",
        observedGeneration: 2,
      },
    ]);
    c = setCondition(c, { type: "Ready", status: "True", reason: "Ready" }, 2, t1);
    expect(c[0]?.lastTransitionTime).toBe("2026-01-01T00:01:00Z");
  });
  it("keeps the order of types", () => {
    let c = setCondition([], { type: "ServerReady", status: "True", reason: "ServerAvailable" }, 1, t0);
    c = setCondition(c, { type: "Ready", status: "True", reason: "Ready" }, 1, t0);
    c = setCondition(c, { type: "ServerReady", status: "False", reason: "Deploying" }, 1, t0);
    expect(c.map((x) => x.type)).toEqual(["ServerReady", "Ready"]);
  });
  it("cuts a message to the schema's bound", () => {
    const long = "é".repeat(STATUS_LIMITS.message + 10);
    const [c] = setCondition(
      [],
      { type: "Ready", status: "False", reason: "Starting", message: long },
      1,
      t0,
    );
    expect(Array.from(c?.message ?? "").length).toBe(STATUS_LIMITS.message);
    expect(statusSchema.safeParse({ conditions: [c] }).success).toBe(true);
  });
});

describe("truncate", () => {
  it.each([
    ["short", "abc", 5, "abc"],
    ["exact", "abcde", 5, "abcde"],
    ["cut", "abcdef", 5, "abcd…"],
    ["astral characters count once", "😀😀😀", 3, "😀😀😀"],
    ["never splits a surrogate pair", "😀😀😀😀", 3, "😀😀…"],
  ])("%s", (_, text, max, expected) => {
    expect(truncate(text, max)).toBe(expected);
  });
});

describe("demandToken", () => {
  it("keeps a value that fits status.demandedAt", () => {
    expect(demandToken("2026-01-01T00:00:00.000Z")).toBe("2026-01-01T00:00:00.000Z");
    expect(demandToken("x".repeat(64))).toBe("x".repeat(64));
  });
  it("records a digest of a longer one: bounded, stable, distinct", () => {
    const a = demandToken("x".repeat(100));
    expect(a.length).toBeLessThanOrEqual(STATUS_LIMITS.demandedAt);
    expect(a).toBe(demandToken("x".repeat(100)));
    expect(a).not.toBe(demandToken("x".repeat(101)));
    expect(statusSchema.safeParse({ demandedAt: a }).success).toBe(true);
  });
});

describe("readers", () => {
  it.each([
    ["no status", {}, { ready: false, idle: false, suspended: false, failed: false, phase: "Pending" }],
    [
      "ready",
      obj(cond("Ready", "True", "Ready")),
      { ready: true, idle: false, suspended: false, failed: false, phase: "Ready" },
    ],
    [
      "starting",
      obj(cond("Ready", "False", "Starting")),
      { ready: false, idle: false, suspended: false, failed: false, phase: "Starting" },
    ],
    [
      "recovering",
      obj(cond("Ready", "False", "Recovering")),
      { ready: false, idle: false, suspended: false, failed: false, phase: "Starting" },
    ],
    [
      "restarting for a spec change",
      obj(cond("Ready", "False", "Restarting")),
      { ready: false, idle: false, suspended: false, failed: false, phase: "Starting" },
    ],
    [
      "idle",
      obj(cond("Idle", "True", "IdleTimeout"), cond("Ready", "False", "IdleTimeout")),
      { ready: false, idle: true, suspended: false, failed: false, phase: "Idle" },
    ],
    [
      "suspended",
      obj(cond("Idle", "True", "Suspended"), cond("Ready", "False", "Suspended")),
      { ready: false, idle: false, suspended: true, failed: false, phase: "Suspended" },
    ],
    [
      "failed",
      obj(cond("Ready", "False", "SessionDead")),
      { ready: false, idle: false, suspended: false, failed: true, phase: "Failed" },
    ],
    [
      "gave up",
      obj(cond("Ready", "False", "RestartLimitReached")),
      { ready: false, idle: false, suspended: false, failed: true, phase: "Failed" },
    ],
    [
      "finalizing",
      obj(cond("Ready", "False", "Deleting")),
      { ready: false, idle: false, suspended: false, failed: false, phase: "Terminating" },
    ],
  ] as const)("%s", (_, o, expected) => {
    expect({
      ready: isReady(o),
      idle: isIdle(o),
      suspended: isSuspended(o),
      failed: isFailed(o),
      phase: phaseOf(o),
    }).toEqual(expected);
  });

  it("reads the failure and the Ready condition", () => {
    const o = obj(cond("ServerReady", "False", "Deploying"), {
      ...cond("Ready", "False", "SessionDead"),
      message: "log",
    });
    expect(readyCondition(o)?.reason).toBe("SessionDead");
    expect(failureOf(o)).toEqual({ reason: "SessionDead", message: "log" });
    expect(failureOf(obj(cond("Ready", "False", "Starting")))).toBeUndefined();
  });

  it("derives Terminating from the deletion, whatever the conditions", () => {
    expect(derivePhase([cond("Ready", "True", "Ready")], true)).toBe("Terminating");
    expect(phaseOf({ metadata: { deletionTimestamp: "2026-01-01T00:00:00Z" }, status: {} })).toBe(
      "Terminating",
    );
  });
});
