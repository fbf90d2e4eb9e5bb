import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CORE, resourcePath } from "../../src/kube/client.ts";
import { LIVYSESSIONS } from "../../src/operator/reconciler.ts";
import { testbedUnavailable } from "../e2e/cluster.ts";
import { testbed } from "../testbed/context.ts";
import { debianBase, importImage, livyReleaseZip, livyServerImage } from "../testbed/images.ts";
import { type NetworkPolicyEnforcer, startNetworkPolicies } from "../testbed/node.ts";
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

  it("admits only the gateway and the operator to each Livy server; the policy stays while parked and goes with the LivySession", async () => {
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
    // parked: the Deployment goes, the policy (it selects no pod now) stays for the wake (decide.ts removeServer)
    await until(
      "the Deployment removed",
      async () => !(await exists(resourcePath(CORE.deployments, ns, "livy-np"))),
    );
    expect(await exists(path)).toBe(true);
    await (await kube()).delete(resourcePath(LIVYSESSIONS, ns, "np"));
    await until("NetworkPolicy removed with the LivySession", async () => !(await exists(path)), 60_000);
  });
});

/**
 * The default NetworkPolicy enforced, on the test bed's real node: kube-network-policies (a real
 * implementation, from the Go module proxy: test/testbed/node.ts) runs in the node for this suite only. The
 * operator (on the host, its sessions served by the stand-in: this suite is about the server's door) makes a
 * real Livy server pod on the node, from the Livy server image, with its per-session credential and its
 * policy. A pod in another namespace gets no connection to it at all (its packets are dropped: the request
 * times out), a pod labelled as the gateway in the operator's namespace is admitted (and then answered by
 * Livy's auth filter: 401 without the credential). With the policy absent (the operator restarted with
 * `--network-policy false`, the old policy deleted), the other namespace's pod reaches the server and the
 * per-session credential refuses it: 401.
 */
const tbInfo = (() => {
  try {
    return testbed();
  } catch {
    return null;
  }
})();
const unavailable = testbedUnavailable(tbInfo);
describe.skipIf(unavailable !== null)(
  `the default NetworkPolicy enforced on the real node${unavailable ? ` — NOT RUN: ${unavailable}` : ""}`,
  () => {
    let op: OperatorProcess | undefined;
    let enforcer: NetworkPolicyEnforcer | undefined;
    let opNs: string;
    let userNs: string;
    let otherNs: string;
    let image: string;
    const node = () => {
      const n = tbInfo?.node;
      if (!n) throw new Error("the test bed has no real node");
      return n;
    };
    const sleeper = (ns: string, name: string, labels: Record<string, string>) =>
      JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace: ns, labels },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            { name: "probe", image: node().images.probe, imagePullPolicy: "Never", args: ["sleep"] },
          ],
        },
      });
    /** `probe get URL` from a pod: "<status>\n<body>", or the error (a timeout when the packets are dropped). */
    const getFrom = async (ns: string, pod: string, url: string) =>
      await kubectl(["exec", "-n", ns, pod, "--", "/probe", "get", url]).then(
        (out) => ({ status: Number(out.split("\n")[0]), error: "" }),
        (err: unknown) => ({ status: 0, error: String(err) }),
      );
    const operatorArgs = (policy: boolean) => [
      "--namespaces",
      userNs,
      "--network-policy",
      String(policy),
      "--network-policy-operator-namespace",
      opNs,
      "--default-image",
      image,
      "--default-image-pull-policy",
      "Never",
      // the per-session credential (the chart's default): its key Secret is made in the operator's namespace
      "--session-key-secret",
      `${opNs}/livy-session-key`,
    ];
    const livyUrl = () => `http://livy-np.${userNs}.svc.cluster.local:8998/sessions`;

    beforeAll(async () => {
      const info = tbInfo;
      if (!info) throw new Error("no test bed");
      const n = node();
      const kubectlBin = info.binDirs.map((d) => join(d, "kubectl")).find((f) => existsSync(f));
      if (!kubectlBin) throw new Error("no kubectl in the test bed's binDirs");
      const release = await livyReleaseZip();
      if (!release) throw new Error("no Apache Livy release zip: no Livy server image");
      // the Livy server image (cached build) and the enforcer (cached build) at once
      const [built, started] = await Promise.all([
        livyServerImage(await debianBase(), release),
        startNetworkPolicies({
          stateDir: info.stateDir,
          kubeconfig: info.kubeconfig,
          kubectl: kubectlBin,
          holderPid: n.holderPid,
        }),
      ]);
      enforcer = started;
      await importImage(built, { address: n.containerdSock });
      image = built.ref;
      await installCrd();
      const [a, b, c] = await Promise.all(
        ["npop", "npuser", "npother"].map((p) => createNamespace(p, { realNode: true })),
      );
      [opNs, userNs, otherNs] = [a ?? "", b ?? "", c ?? ""];
      await kubectl(
        ["apply", "-f", "-"],
        sleeper(opNs, "gateway", { "app.kubernetes.io/name": "livy-gateway" }),
      );
      await kubectl(["apply", "-f", "-"], sleeper(otherNs, "outsider", { app: "outsider" }));
      op = await startOperator({ name: "netpol-node", args: operatorArgs(true) });
      await applySession(userNs, "np", { kind: "pyspark", idleTimeout: "1h" });
      await kubectl(["wait", "--for=condition=Ready", "pod/gateway", "-n", opNs, "--timeout=120s"]);
      await kubectl(["wait", "--for=condition=Ready", "pod/outsider", "-n", otherNs, "--timeout=120s"]);
    }, 1_200_000);

    afterAll(async () => {
      await kubectl(["delete", "livysessions", "--all", "-n", userNs, "--wait=true", "--timeout=60s"]).catch(
        () => "",
      );
      await op?.stop();
      await enforcer?.stop();
      for (const ns of [opNs, userNs, otherNs])
        if (ns) await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
    });

    it("drops a pod in another namespace and admits the gateway's pod, which Livy's auth filter then answers", async () => {
      const path = resourcePath(CORE.networkPolicies, userNs, "livy-np");
      await until("the server's NetworkPolicy", async () => await exists(path), 60_000);
      // the Livy server answers the gateway's pod once it listens: 401 without the per-session credential
      const admitted = await until(
        "the Livy server answering the gateway's pod",
        async () => {
          const r = await getFrom(opNs, "gateway", livyUrl());
          return r.status > 0 && r;
        },
        600_000,
      );
      expect(admitted.status).toBe(401);
      // the same request from a pod in another namespace: no connection (dropped, so it times out)
      const refused = await getFrom(otherNs, "outsider", livyUrl());
      expect(refused.status).toBe(0);
      expect(refused.error).toMatch(/Timeout|deadline exceeded/);
      // and straight to the pod's address, past the Service: dropped too
      const podIp = (
        await kubectl([
          "get",
          "pods",
          "-n",
          userNs,
          "-l",
          "livy.dev/session=np",
          "-o",
          "jsonpath={.items[0].status.podIP}",
        ])
      ).trim();
      const direct = await getFrom(otherNs, "outsider", `http://${podIp}:8998/sessions`);
      expect(direct.error).toMatch(/Timeout|deadline exceeded/);
    }, 900_000);

    it("with the policy absent (--network-policy false), the per-session credential refuses the direct request", async () => {
      await op?.stop();
      op = await startOperator({ name: "netpol-node-off", args: operatorArgs(false) });
      // an operator without --network-policy does not manage policies: the one made before goes by hand
      await kubectl(["delete", "networkpolicy", "livy-np", "-n", userNs]);
      const reached = await until(
        "the outsider reaching the Livy server",
        async () => {
          const r = await getFrom(otherNs, "outsider", livyUrl());
          return r.status > 0 && r;
        },
        300_000,
      );
      expect(reached.status).toBe(401);
      // the operator did not make the policy again
      expect(await exists(resourcePath(CORE.networkPolicies, userNs, "livy-np"))).toBe(false);
    }, 600_000);
  },
);
