import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CORE, resourcePath } from "../../src/kube/client.ts";
import {
  applySession,
  createNamespace,
  exists,
  installCrd,
  isReady,
  kube,
  kubectl,
  type OperatorProcess,
  phaseIs,
  startOperator,
  until,
  waitFor,
} from "./harness.ts";

interface NetworkPolicy {
  metadata: { ownerReferences: Array<{ kind: string; controller: boolean }> };
  spec: {
    podSelector: { matchLabels: Record<string, string> };
    policyTypes: string[];
    ingress: Array<{ from: unknown[]; ports: Array<{ port: number }> }>;
  };
}

describe("with --network-policy", () => {
  let op: OperatorProcess;
  let ns: string;
  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("netpol");
    op = await startOperator({
      name: "netpol",
      args: [
        "--namespaces",
        ns,
        "--network-policy",
        "true",
        "--network-policy-operator-namespace",
        "livy-system",
      ],
    });
  });
  afterAll(async () => {
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
      () => "",
    );
    expect(await op?.stop()).toBe(0);
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("admits only the gateway and the operator to each Livy server, and removes the policy with the server", async () => {
    await applySession(ns, "np", { kind: "pyspark", idleTimeout: "2s" });
    await waitFor(ns, "np", isReady, "Ready");
    const path = resourcePath(CORE.networkPolicies, ns, "livy-np");
    const np = await (await kube()).get<NetworkPolicy>(path);
    expect(np.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: "LivySession", controller: true }),
    ]);
    expect(np.spec.podSelector.matchLabels).toEqual({ "livy.dev/session": "np" });
    expect(np.spec.policyTypes).toEqual(["Ingress"]);
    expect(np.spec.ingress).toEqual([
      {
        from: ["livy-operator", "livy-gateway"].map((app) => ({
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "livy-system" } },
          podSelector: { matchLabels: { "app.kubernetes.io/name": app } },
        })),
        // Livy's port and the Spark UI's (status.sparkUiURL)
        ports: [
          { protocol: "TCP", port: 8998 },
          { protocol: "TCP", port: 4040 },
        ],
      },
    ]);
    await waitFor(ns, "np", phaseIs("Idle"), "Idle", 20_000);
    await until("NetworkPolicy removed with the server", async () => !(await exists(path)));
  });
});
