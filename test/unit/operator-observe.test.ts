import { describe, expect, it } from "vitest";
import {
  type DeploymentLike,
  observeServer,
  type PodLike,
  setCondition,
} from "../../src/operator/observe.ts";
import { derivePhase } from "../../src/operator/phase.ts";

const available: DeploymentLike = {
  metadata: { generation: 1 },
  status: { observedGeneration: 1, availableReplicas: 1, readyReplicas: 1, updatedReplicas: 1 },
};
const progressing: DeploymentLike = {
  metadata: { generation: 1 },
  status: {
    observedGeneration: 1,
    conditions: [{ type: "Progressing", status: "True", message: "ReplicaSet is progressing" }],
  },
};
const waitingPod = (reason: string, message = "detail"): PodLike => ({
  metadata: { name: "p" },
  status: { containerStatuses: [{ name: "livy", state: { waiting: { reason, message } } }] },
});

describe("observeServer", () => {
  it.each([
    ["no deployment", undefined, [], { state: "Missing" }],
    ["available", available, [], { state: "Available" }],
    [
      "deployment being deleted",
      { ...available, metadata: { deletionTimestamp: "2026-01-01T00:00:00Z" } },
      [],
      { state: "Terminating" },
    ],
    ["stale observedGeneration", { ...available, metadata: { generation: 2 } }, [], { state: "Progressing" }],
    ["progressing", progressing, [], { state: "Progressing", message: "ReplicaSet is progressing" }],
    [
      "image pull backoff",
      progressing,
      [waitingPod("ImagePullBackOff")],
      { state: "Failed", reason: "ImagePullFailed" },
    ],
    [
      "err image pull",
      progressing,
      [waitingPod("ErrImagePull")],
      { state: "Failed", reason: "ImagePullFailed" },
    ],
    [
      "invalid image name",
      progressing,
      [waitingPod("InvalidImageName")],
      { state: "Failed", reason: "ImagePullFailed" },
    ],
    [
      "crash loop",
      progressing,
      [waitingPod("CrashLoopBackOff")],
      { state: "Failed", reason: "CrashLooping" },
    ],
    [
      "config error",
      progressing,
      [waitingPod("CreateContainerConfigError", "secret x not found")],
      { state: "Failed", reason: "ContainerConfigError" },
    ],
    [
      "unschedulable",
      progressing,
      [
        {
          status: {
            conditions: [
              { type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/3 nodes" },
            ],
          },
        },
      ],
      { state: "Failed", reason: "Unschedulable", message: "0/3 nodes" },
    ],
    [
      "replica failure (quota)",
      {
        ...progressing,
        status: { conditions: [{ type: "ReplicaFailure", status: "True", message: "exceeded quota" }] },
      },
      [],
      { state: "Failed", reason: "ReplicaFailure", message: "exceeded quota" },
    ],
    [
      "terminating pod is ignored",
      progressing,
      [{ ...waitingPod("ImagePullBackOff"), metadata: { deletionTimestamp: "x" } }],
      { state: "Progressing" },
    ],
    [
      "waiting for ContainerCreating is not a failure",
      progressing,
      [waitingPod("ContainerCreating")],
      { state: "Progressing" },
    ],
  ] as const)("%s", (_, dep, pods, expected) => {
    expect(observeServer(dep as DeploymentLike | undefined, pods as unknown as PodLike[])).toMatchObject(
      expected,
    );
  });
});

describe("setCondition", () => {
  const t0 = new Date("2026-01-01T00:00:00Z");
  const t1 = new Date("2026-01-01T00:01:00Z");
  it("moves lastTransitionTime only when the status changes", () => {
    let c = setCondition([], { type: "Ready", status: "False", reason: "Starting" }, 1, t0);
    c = setCondition(c, { type: "Ready", status: "False", reason: "Deploying", message: "m" }, 2, t1);
    expect(c).toEqual([
      {
        type: "Ready",
        status: "False",
        reason: "Deploying",
        message: "m",
        lastTransitionTime: "2026-01-01T00:00:00Z",
        observedGeneration: 2,
      },
    ]);
    c = setCondition(c, { type: "Ready", status: "True", reason: "Ready" }, 2, t1);
    expect(c[0]?.lastTransitionTime).toBe("2026-01-01T00:01:00Z");
  });
  it("keeps the order of types", () => {
    let c = setCondition([], { type: "ServerReady", status: "True", reason: "A" }, 1, t0);
    c = setCondition(c, { type: "Ready", status: "True", reason: "B" }, 1, t0);
    c = setCondition(c, { type: "ServerReady", status: "False", reason: "C" }, 1, t0);
    expect(c.map((x) => x.type)).toEqual(["ServerReady", "Ready"]);
  });
});

describe("derivePhase", () => {
  const cond = (type: string, status: "True" | "False", reason: string) => ({
    type,
    status,
    reason,
    message: "",
    lastTransitionTime: "2026-01-01T00:00:00Z",
  });
  it.each([
    ["no conditions", [], false, "Pending"],
    ["deleting", [cond("Ready", "True", "Ready")], true, "Terminating"],
    ["ready", [cond("Ready", "True", "Ready")], false, "Ready"],
    ["starting", [cond("Ready", "False", "Starting")], false, "Starting"],
    ["recovering", [cond("Ready", "False", "Recovering")], false, "Starting"],
    ["idle", [cond("Idle", "True", "IdleTimeout"), cond("Ready", "False", "IdleTimeout")], false, "Idle"],
    [
      "suspended",
      [cond("Idle", "True", "Suspended"), cond("Ready", "False", "Suspended")],
      false,
      "Suspended",
    ],
    ["failed: session dead", [cond("Ready", "False", "SessionDead")], false, "Failed"],
    ["failed: image", [cond("Ready", "False", "ImagePullFailed")], false, "Failed"],
    ["failed: restarts", [cond("Ready", "False", "RestartLimitReached")], false, "Failed"],
  ] as const)("%s", (_, conditions, deleting, phase) => {
    expect(derivePhase([...conditions], deleting)).toBe(phase);
  });
});
