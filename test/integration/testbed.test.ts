import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { AppsV1Api, CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testbed } from "../testbed/context.ts";
import { KWOK_NAMESPACE_ANNOTATIONS } from "../testbed/controlplane.ts";
import { until } from "./harness.ts";

const run = promisify(execFile);

describe("the test bed's control plane", () => {
  const ns = `tb-${Date.now().toString(36)}`;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  const env = () => ({
    ...process.env,
    KUBECONFIG: testbed().kubeconfig,
    PATH: `${testbed().binDirs.join(":")}:${process.env.PATH}`,
  });

  beforeAll(async () => {
    // the library's own kubeconfig loader: what its users do (the operator reads it with src/kube/config.ts)
    const kc = new KubeConfig();
    kc.loadFromFile(testbed().kubeconfig);
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
    // its pods go to the kwok node, as in every operator test (see harness.ts createNamespace)
    await core.createNamespace({
      body: { metadata: { name: ns, annotations: { ...KWOK_NAMESPACE_ANNOTATIONS } } },
    });
  });
  afterAll(async () => {
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
  });

  it("runs a Deployment created with @kubernetes/client-node: ReplicaSet, Pod Running and Ready on the kwok node", async () => {
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: "web" },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: "web" } },
          template: {
            metadata: { labels: { app: "web" } },
            spec: { containers: [{ name: "web", image: "nginx:1.27" }] },
          },
        },
      },
    });
    const rs = await until("a ReplicaSet", async () => {
      const l = await apps.listNamespacedReplicaSet({ namespace: ns });
      return l.items.find((r) =>
        r.metadata?.ownerReferences?.some((o) => o.kind === "Deployment" && o.name === "web"),
      );
    });
    const pod = await until("a Ready pod", async () => {
      const l = await core.listNamespacedPod({ namespace: ns, labelSelector: "app=web" });
      return l.items.find(
        (p) =>
          p.status?.phase === "Running" &&
          p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
      );
    });
    expect(pod.spec?.nodeName).toBe("kwok-node-0");
    expect(pod.metadata?.ownerReferences?.[0]?.name).toBe(rs.metadata?.name);
    const dep = await until("Deployment available", async () => {
      const d = await apps.readNamespacedDeployment({ name: "web", namespace: ns });
      return (d.status?.availableReplicas ?? 0) >= 1 && d;
    });
    expect(dep.status?.readyReplicas).toBe(1);
  });

  it("garbage-collects what the Deployment owned when it is deleted", async () => {
    await apps.deleteNamespacedDeployment({ name: "web", namespace: ns, propagationPolicy: "Background" });
    await until("ReplicaSets and Pods collected", async () => {
      const [rs, pods] = await Promise.all([
        apps.listNamespacedReplicaSet({ namespace: ns }),
        core.listNamespacedPod({ namespace: ns }),
      ]);
      return rs.items.length === 0 && pods.items.length === 0;
    });
  });

  it("answers kubectl, reporting the version stamped into the binaries", async () => {
    const { stdout } = await run("kubectl", ["version", "-o", "json"], { env: env() });
    const v = JSON.parse(stdout) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string };
    };
    expect(v.serverVersion.gitVersion).toMatch(/^v1\.(3[4-9])\.\d+$/);
    expect(v.clientVersion.gitVersion).toBe(v.serverVersion.gitVersion);
    const nodes = await run("kubectl", ["get", "nodes", "-o", "name"], { env: env() });
    expect(nodes.stdout.trim().split("\n").sort()).toEqual(["node/kwok-node-0", "node/real-node-0"]);
  });

  it("enforces RBAC: an unprivileged service account is forbidden", async () => {
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "nobody" } } });
    const { stdout } = await run(
      "kubectl",
      ["auth", "can-i", "list", "pods", "-n", ns, `--as=system:serviceaccount:${ns}:nobody`],
      {
        env: env(),
      },
    ).catch((e: { stdout: string }) => e);
    expect(stdout.trim()).toBe("no");
  });

  it("installs a Helm chart with helm 3 and checks kubeVersion against the stamped server version", async () => {
    const dir = mkdtempSync(join(tmpdir(), "chart-"));
    await run("helm", ["create", join(dir, "hello")], { env: env() });
    writeFileSync(
      join(dir, "hello", "Chart.yaml"),
      "apiVersion: v2\nname: hello\nversion: 0.1.0\nkubeVersion: '>=1.34.0-0'\n",
    );
    const { stdout } = await run(
      "helm",
      [
        "install",
        "hello",
        join(dir, "hello"),
        "-n",
        ns,
        "--wait",
        "--timeout",
        "90s",
        "--set",
        "image.tag=1.27",
      ],
      { env: env() },
    );
    expect(stdout).toContain("STATUS: deployed");
    const list = await run("helm", ["list", "-n", ns, "-o", "json"], { env: env() });
    expect(JSON.parse(list.stdout)).toMatchObject([{ name: "hello", status: "deployed" }]);
    await run("helm", ["uninstall", "hello", "-n", ns, "--wait"], { env: env() });
  });
});
