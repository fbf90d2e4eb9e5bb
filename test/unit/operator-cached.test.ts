import { describe, expect, it } from "vitest";
import { keepDeployment, keepMetadataOnly, keepPod, ownerKey } from "../../src/operator/cached.ts";
import { SESSION_LABEL, SPEC_HASH_ANNOTATION } from "../../src/operator/objects.ts";
import { observeServer, serverPodLost } from "../../src/operator/observe.ts";

const meta = {
  name: "livy-s1",
  namespace: "ns",
  uid: "u",
  resourceVersion: "7",
  generation: 2,
  labels: { [SESSION_LABEL]: "s1" },
  annotations: { [SPEC_HASH_ANNOTATION]: "abc" },
  creationTimestamp: "2026-11-27T00:00:00Z",
  managedFields: [{ manager: "livy-operator", fieldsV1: { "f:spec": {} } }],
};

describe("what the operator caches of its objects (cached.ts)", () => {
  it("keeps metadata decisions read and drops managedFields, specs and data", () => {
    const cm = keepMetadataOnly({ kind: "ConfigMap", metadata: meta, data: { "livy.conf": "x" } } as never);
    const { managedFields: _, uid: __, ...rest } = meta;
    expect(cm.metadata).toEqual(rest);
    expect(cm.metadata?.annotations?.[SPEC_HASH_ANNOTATION]).toBe("abc");
    expect((cm as unknown as { data?: unknown }).data).toBeUndefined();
    expect(ownerKey(cm)).toBe("ns/s1");
  });

  it("a Deployment and its Pods read the same through observeServer and serverPodLost after the transform", () => {
    const deployment = {
      metadata: meta,
      spec: { replicas: 1, template: { spec: { containers: [{ name: "livy", image: "x" }] } } },
      status: {
        observedGeneration: 2,
        availableReplicas: 1,
        readyReplicas: 1,
        updatedReplicas: 1,
        conditions: [{ type: "Available", status: "True" }],
      },
    };
    const pods = [
      {
        metadata: { ...meta, name: "livy-s1-abc", creationTimestamp: "2026-11-27T00:00:00Z" },
        spec: { nodeName: "n1", containers: [{ name: "livy" }] },
        status: {
          phase: "Running",
          conditions: [{ type: "Ready", status: "True" }],
          containerStatuses: [
            {
              name: "livy",
              ready: true,
              restartCount: 1,
              state: { running: { startedAt: "2026-11-27T00:02:00Z" } },
              lastState: { terminated: { exitCode: 137, reason: "OOMKilled" } },
            },
          ],
        },
      },
    ];
    const kept = pods.map((p) => keepPod(p as never));
    expect(observeServer(keepDeployment(deployment as never) as never, kept as never)).toEqual(
      observeServer(deployment as never, pods as never),
    );
    const readyMs = Date.parse("2026-11-27T00:01:00Z");
    expect(serverPodLost(kept as never, readyMs)).toEqual(serverPodLost(pods as never, readyMs));
    expect(serverPodLost(kept as never, readyMs)).not.toBeNull();
    expect((kept[0] as { spec?: unknown }).spec).toEqual({ nodeName: "n1" });
    expect((keepDeployment(deployment as never) as { spec?: unknown }).spec).toEqual({ replicas: 1 });
  });
});
