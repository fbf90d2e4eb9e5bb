import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SESSION_CONF_DEFAULTS } from "../../src/api/index.ts";
import { CORE, resourcePath } from "../../src/kube/client.ts";
import { testbed } from "../testbed/context.ts";
import { REAL_NODE } from "../testbed/node.ts";
import {
  applySession,
  createNamespace,
  installCrd,
  isReady,
  kube,
  kubectl,
  type OperatorProcess,
  startOperator,
  until,
  waitFor,
} from "./harness.ts";

interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  envFrom?: unknown[];
  volumeMounts?: Array<{ name: string; mountPath: string }>;
  [k: string]: unknown;
}
interface PodSpec {
  containers: Container[];
  volumes?: Array<{ name: string; [k: string]: unknown }>;
  imagePullSecrets?: Array<{ name: string }>;
  affinity?: unknown;
  priorityClassName?: string;
  priority?: number;
  nodeName?: string;
  [k: string]: unknown;
}

const PRIORITY_CLASS = `livy-interactive-${Date.now().toString(36)}`;

/**
 * The Livy pod's spec fields (spec.server: imagePullSecrets, env valueFrom, envFrom, volumes and mounts,
 * affinity, priorityClassName) and the operator-wide defaults under them (--default-server,
 * --default-session-conf), end to end: the operator builds the Deployment on the kwok node (its shape, and the
 * API server's admission of the pods), and the very pod template it built runs on the real node, where the
 * kubelet mounts the volumes and resolves the environment.
 */
describe("the Livy pod's spec from spec.server and the operator's defaults", () => {
  let ns: string;
  let realNs: string;
  let op: OperatorProcess;

  const objects = (namespace: string) => [
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "site-env", namespace },
      data: { SITE: "eu-1" },
    },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "corp-ca", namespace },
      data: { "ca.crt": "-----BEGIN CERTIFICATE-----\ntest\n" },
    },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "s3", namespace },
      stringData: { AWS_ACCESS_KEY_ID: "AKIA-test", token: "t0ken" },
    },
  ];

  beforeAll(async () => {
    // its own CRD: run alone (not after a file that installed it), the operator would exit on a missing CRD
    await installCrd();
    ns = await createNamespace("podspec");
    realNs = await createNamespace("podspec-real", { realNode: true });
    await kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "scheduling.k8s.io/v1",
        kind: "PriorityClass",
        metadata: { name: PRIORITY_CLASS },
        value: 1000,
      }),
    );
    for (const o of [...objects(ns), ...objects(realNs)])
      await kubectl(["apply", "-f", "-"], JSON.stringify(o));
    op = await startOperator({
      name: "podspec",
      env: {
        LIVY_OPERATOR_DEFAULT_SERVER: JSON.stringify({
          envFrom: [{ configMapRef: { name: "site-env" } }],
          volumes: [{ name: "ca", configMap: { name: "corp-ca" } }],
          volumeMounts: [{ name: "ca", mountPath: "/etc/corp-ca", readOnly: true }],
          podLabels: { "example.com/tier": "default" },
        }),
        LIVY_OPERATOR_DEFAULT_SESSION_CONF: JSON.stringify({ "spark.ui.enabled": "false" }),
      },
    });
  }, 240_000);

  afterAll(async () => {
    await op?.stop();
    for (const n of [ns, realNs]) await kubectl(["delete", "namespace", n, "--wait=false"]).catch(() => "");
    await kubectl(["delete", "priorityclass", PRIORITY_CLASS, "--wait=false"]).catch(() => "");
  });

  it("deploys them on the kwok node, the defaults under the LivySession's own", async () => {
    await applySession(ns, "podspec", {
      server: {
        imagePullSecrets: [{ name: "regcred" }],
        env: [
          { name: "TOKEN", valueFrom: { secretKeyRef: { name: "s3", key: "token" } } },
          { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        ],
        envFrom: [{ secretRef: { name: "s3" }, prefix: "S3_" }],
        volumes: [{ name: "scratch", emptyDir: { sizeLimit: "1Gi" } }],
        volumeMounts: [{ name: "scratch", mountPath: "/scratch" }],
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                { matchExpressions: [{ key: "kubernetes.io/os", operator: "In", values: ["linux"] }] },
              ],
            },
          },
        },
        priorityClassName: PRIORITY_CLASS,
        podLabels: { "example.com/tier": "own" },
      },
      session: { conf: { "spark.sql.shuffle.partitions": "4" } },
    });
    await waitFor(ns, "podspec", isReady, "Ready", 120_000);
    const k = await kube();
    const d = await k.get<{
      spec: { template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
    }>(resourcePath(CORE.deployments, ns, "livy-podspec"));
    const pod = d.spec.template.spec;
    const c = pod.containers[0] as Container;
    expect(pod.imagePullSecrets).toEqual([{ name: "regcred" }]);
    expect(pod.priorityClassName).toBe(PRIORITY_CLASS);
    expect(pod.affinity).toMatchObject({ nodeAffinity: {} });
    expect(c.env).toEqual(
      expect.arrayContaining([
        { name: "TOKEN", valueFrom: { secretKeyRef: { name: "s3", key: "token" } } },
        { name: "POD_NAME", valueFrom: { fieldRef: { apiVersion: "v1", fieldPath: "metadata.name" } } },
      ]),
    );
    // the default's envFrom first, then the LivySession's
    expect(c.envFrom).toEqual([
      { configMapRef: { name: "site-env" } },
      { secretRef: { name: "s3" }, prefix: "S3_" },
    ]);
    expect(pod.volumes?.map((v) => v.name)).toEqual(["conf", "logs", "tmp", "work", "ca", "scratch"]);
    expect(c.volumeMounts?.map((m) => m.mountPath).slice(-2)).toEqual(["/etc/corp-ca", "/scratch"]);
    expect(d.spec.template.metadata.labels["example.com/tier"]).toBe("own");
    // the API server admitted the pod with its priority resolved from the PriorityClass
    const pods = await k.get<{ items: Array<{ spec: PodSpec }> }>(
      `${resourcePath(CORE.pods, ns)}?labelSelector=${encodeURIComponent("livy.dev/session=podspec")}`,
    );
    expect(pods.items[0]?.spec.priority).toBe(1000);
    // the operator's default Spark conf reached Livy under the session's own, over the built-in one (the
    // stand-in keeps the POST body)
    const ls = await waitFor(ns, "podspec", isReady, "Ready");
    const sessionUrl = ls.status?.sessionURL ?? "";
    const session = (await (await fetch(sessionUrl)).json()) as { conf?: Record<string, string> };
    expect(session.conf).toEqual({
      ...SESSION_CONF_DEFAULTS,
      "spark.ui.enabled": "false",
      "spark.sql.shuffle.partitions": "4",
    });
  }, 180_000);

  it("the pod template the operator built runs on the real node: volumes mounted, env resolved", async () => {
    const node = testbed().node;
    if (!node) throw new Error("the test bed has no real node");
    const d = await (await kube()).get<{ spec: { template: { spec: PodSpec } } }>(
      resourcePath(CORE.deployments, ns, "livy-podspec"),
    );
    // The operator's template as built, with the Livy image (not on the node: no registry here) replaced by
    // the test bed's probe (it can print files, /proc/self/environ among them) and Livy's probes left out.
    const spec = structuredClone(d.spec.template.spec);
    const livy = spec.containers[0] as Container;
    spec.containers[0] = {
      ...livy,
      image: node.images.probe,
      imagePullPolicy: "Never",
      args: ["sleep"],
      readinessProbe: undefined,
      livenessProbe: undefined,
      startupProbe: undefined,
      ports: undefined,
    };
    // the operator's conf volume is its ConfigMap livy-podspec, in the session's namespace
    await kubectl(["get", "configmap", "livy-podspec", "-n", ns, "-o", "json"]).then(async (json) => {
      const cm = JSON.parse(json) as { data: Record<string, string> };
      await kubectl(
        ["apply", "-f", "-"],
        JSON.stringify({
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "livy-podspec", namespace: realNs },
          data: cm.data,
        }),
      );
    });
    await kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "livy-podspec", namespace: realNs },
        spec: { ...spec, terminationGracePeriodSeconds: 1 },
      }),
    );
    await until(
      "the pod running on the real node",
      async () => {
        const p = await (await kube()).get<{ spec: PodSpec; status: { phase?: string } }>(
          resourcePath(CORE.pods, realNs, "livy-podspec"),
        );
        return p.status.phase === "Running" ? p : null;
      },
      120_000,
    ).then((p) => expect(p.spec.nodeName).toBe(REAL_NODE));
    const cat = async (file: string) =>
      await kubectl(["exec", "-n", realNs, "livy-podspec", "--", "/probe", "cat", file]);
    const environ = Object.fromEntries(
      (await cat("/proc/self/environ"))
        .split("\0")
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
    expect(environ).toMatchObject({
      TOKEN: "t0ken", // valueFrom.secretKeyRef
      POD_NAME: "livy-podspec", // valueFrom.fieldRef
      SITE: "eu-1", // the default's envFrom (ConfigMap)
      S3_AWS_ACCESS_KEY_ID: "AKIA-test", // the LivySession's envFrom (Secret, prefixed)
      LIVY_CONF_DIR: "/opt/livy/conf",
    });
    expect(await cat("/etc/corp-ca/ca.crt")).toContain("BEGIN CERTIFICATE"); // the default's configMap volume
    expect(await cat("/opt/livy/conf/livy.conf")).toContain("livy.server.port = 8998");
  }, 180_000);
});
