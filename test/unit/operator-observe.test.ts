import { describe, expect, it } from "vitest";
import { type DeploymentLike, observeServer, type PodLike } from "../../src/operator/observe.ts";

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
