import { describe, expect, it } from "vitest";
import {
  type DeploymentLike,
  observeActivity,
  observeServer,
  type PodLike,
  serverPodLost,
} from "../../src/operator/observe.ts";

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
    [
      "progressing: one message however Kubernetes words the rollout",
      progressing,
      [],
      { state: "Progressing", message: "waiting for the Livy server pod (0/1 ready)" },
    ],
    [
      "progress deadline exceeded: Kubernetes' message",
      {
        ...progressing,
        status: {
          observedGeneration: 1,
          conditions: [
            {
              type: "Progressing",
              status: "False",
              reason: "ProgressDeadlineExceeded",
              message: 'ReplicaSet "livy-a-1" has timed out progressing.',
            },
          ],
        },
      },
      [],
      { state: "Progressing", message: 'ReplicaSet "livy-a-1" has timed out progressing.' },
    ],
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
      "replica failure the API server could not complete: retried by Kubernetes, still progressing",
      {
        metadata: { generation: 1 },
        status: {
          conditions: [{ type: "ReplicaFailure", status: "True", message: "etcdserver: request timed out" }],
        },
      },
      [],
      {
        state: "Progressing",
        message: "the Livy server pod is not created yet: etcdserver: request timed out",
      },
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

describe("observeActivity: every Livy session and batch on the server counts", () => {
  const own = { id: 7, state: "idle" };
  const at = (started: number, completed = 0, state = "available") => ({ state, started, completed });
  it.each([
    ["nothing ran", [own], [[7, undefined]], [], { busy: false, latestMs: 0 }],
    ["its own statement completed", [own], [[7, at(100, 200)]], [], { busy: false, latestMs: 200 }],
    ["its own statement running", [own], [[7, at(100, 0, "running")]], [], { busy: true, latestMs: 100 }],
    [
      "another session's statement completed later",
      [own, { id: 8, state: "idle" }],
      [
        [7, at(100, 200)],
        [8, at(300, 400)],
      ],
      [],
      { busy: false, latestMs: 400 },
    ],
    [
      "another session running a statement",
      [own, { id: 8, state: "idle" }],
      [
        [7, at(100, 200)],
        [8, at(300, 0, "waiting")],
      ],
      [],
      { busy: true, latestMs: 300 },
    ],
    [
      "another session busy",
      [own, { id: 8, state: "busy" }],
      [[7, undefined]],
      [],
      { busy: true, latestMs: 0 },
    ],
    [
      "another session starting",
      [own, { id: 8, state: "starting" }],
      [[7, undefined]],
      [],
      { busy: true, latestMs: 0 },
    ],
    [
      "a dead session is no activity",
      [own, { id: 8, state: "dead" }],
      [[7, undefined]],
      [],
      { busy: false, latestMs: 0 },
    ],
    ["a batch running", [own], [[7, undefined]], [{ id: 1, state: "running" }], { busy: true, latestMs: 0 }],
    [
      "a batch finished",
      [own],
      [[7, undefined]],
      [{ id: 1, state: "success" }],
      { busy: false, latestMs: 0 },
    ],
    [
      "not the Livy sessions the operator opened for another LivySession on a shared server",
      [
        own,
        { id: 8, state: "starting", name: "data.other.m1x2.0" },
        { id: 9, state: "idle", name: "x.y.m1.0.0a1b2c3d" },
      ],
      [
        [7, at(100, 200)],
        [9, at(300, 0, "running")],
      ],
      [],
      { busy: false, latestMs: 200 },
    ],
    [
      "its own earlier Livy sessions do count",
      [own, { id: 6, state: "busy", name: "data.ws.m1x2.0.0a1b2c3d" }],
      [[7, undefined]],
      [],
      { busy: true, latestMs: 0 },
    ],
  ] as const)("%s", (_, sessions, newest, batches, expected) => {
    expect(
      observeActivity({
        owner: { namespace: "data", name: "ws" },
        sessions: [...sessions],
        newest: new Map(newest.map(([id, st]) => [id, st])),
        batches: [...batches],
      }),
    ).toEqual(expected);
  });
});

describe("serverPodLost: the pod a Ready Livy session lives in", () => {
  const READY = Date.parse("2026-03-01T12:10:00Z");
  const before = "2026-03-01T12:00:00Z";
  const afterReady = "2026-03-01T12:20:00Z";
  const pod = (
    name: string,
    opts: {
      created?: string;
      started?: string | null;
      deleting?: boolean;
      phase?: string;
      restarts?: number;
      last?: { exitCode: number; reason: string };
    } = {},
  ): PodLike => ({
    metadata: {
      name,
      creationTimestamp: opts.created ?? before,
      ...(opts.deleting ? { deletionTimestamp: afterReady } : {}),
    },
    status: {
      phase: opts.phase ?? "Running",
      containerStatuses: [
        {
          name: "livy",
          restartCount: opts.restarts ?? 0,
          state:
            opts.started === null
              ? { terminated: { exitCode: 137, reason: "Error" } }
              : { running: { startedAt: opts.started ?? before } },
          ...(opts.last ? { lastState: { terminated: opts.last } } : {}),
        },
      ],
    },
  });

  it.each<[string, PodLike[], string | null]>([
    ["the pod that was running at Ready", [pod("a")], null],
    ["no pods listed: no evidence (Livy's answers decide)", [], null],
    ["it is being deleted", [pod("a", { deleting: true })], "the Livy server's pod a is being deleted"],
    [
      "it is being deleted and its replacement was created after Ready",
      [pod("a", { deleting: true }), pod("b", { created: afterReady, started: afterReady })],
      "the Livy server's pod a is being deleted",
    ],
    [
      "only a replacement is left (the old pod deleted at once)",
      [pod("b", { created: afterReady })],
      "pod b replaced the Livy server's pod",
    ],
    [
      "it ended (evicted)",
      [pod("a", { phase: "Failed", started: null })],
      "the Livy server's pod a ended (Failed)",
    ],
    [
      "its container was started again after Ready (killed, OOM)",
      [pod("a", { started: afterReady, restarts: 1, last: { exitCode: 137, reason: "OOMKilled" } })],
      "the Livy server's container in pod a stopped (exit 137, OOMKilled)",
    ],
    [
      "its container stopped and waits to start again",
      [pod("a", { started: null, restarts: 1 })],
      "the Livy server's container in pod a stopped (exit 137, Error)",
    ],
    [
      "a container restarted before Ready and has run since: it holds the session",
      [pod("a", { restarts: 2 })],
      null,
    ],
    [
      "an older pod still terminating beside the one that holds the session (after a Recover restart)",
      [pod("old", { deleting: true }), pod("a")],
      null,
    ],
    ["times unknown (no evidence either way)", [{ metadata: { name: "a" }, status: {} }], null],
  ])("%s", (_what, pods, want) => {
    expect(serverPodLost(pods, READY)).toBe(want);
  });
});
