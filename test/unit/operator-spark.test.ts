import { describe, expect, it } from "vitest";
import { parseLivySession, SESSION_CONF_DEFAULTS, type SparkSpec } from "../../src/api/livysession.ts";
import {
  desiredConfigMap,
  desiredDeployment,
  desiredNetworkPolicy,
  desiredRoleBinding,
  desiredServiceAccount,
  driverServiceAccountName,
  type OwnerRef,
  ownsDriverIdentity,
} from "../../src/operator/objects.ts";
import { executorLabels, executorPodTemplate, sparkConf } from "../../src/operator/spark.ts";
import {
  cond,
  livySession,
  ok,
  readyStatus,
  resource,
  SETTINGS,
  serverOf,
  statusOf,
  step,
  world,
} from "./operator-world.ts";

const owner: OwnerRef = {
  apiVersion: "livy.dev/v1alpha1",
  kind: "LivySession",
  name: "ws",
  namespace: "data",
  uid: "u-1",
};
const defaults = {
  image: "livy:default",
  imagePullPolicy: "IfNotPresent" as const,
  resources: { requests: { cpu: "1" } },
};

/** spec.spark as the API server stores it (defaults applied). */
function spark(s: Record<string, unknown>): SparkSpec {
  const r = parseLivySession({
    apiVersion: "livy.dev/v1alpha1",
    kind: "LivySession",
    metadata: { name: "ws" },
    spec: { spark: s },
  });
  if (!r.success) throw new Error(r.message);
  return r.data.spec.spark as SparkSpec;
}

const input = (s: SparkSpec | undefined) => ({
  name: "ws",
  spark: s,
  serverImage: "livy:server",
  serverImagePullPolicy: "IfNotPresent" as const,
});

describe("the Spark conf derived from spec.spark", () => {
  it("adds nothing in local mode, set or not", () => {
    expect(sparkConf(input(undefined))).toEqual({});
    expect(sparkConf(input(spark({ mode: "local" })))).toEqual({});
  });

  it("in kubernetes mode: the mark, the Livy image as executor image, the template, labels, fixed ports, 2 executors", () => {
    expect(sparkConf(input(spark({ mode: "kubernetes" })))).toEqual({
      "spark.livy-operator.mode": "kubernetes",
      "spark.kubernetes.container.image": "livy:server",
      "spark.kubernetes.container.image.pullPolicy": "IfNotPresent",
      "spark.livy-operator.executorPodTemplate": JSON.stringify(
        executorPodTemplate(spark({ mode: "kubernetes" })),
      ),
      "spark.kubernetes.executor.deleteOnTermination": "true",
      "spark.driver.port": "7078",
      "spark.blockManager.port": "7079",
      "spark.kubernetes.executor.label.app.kubernetes.io/name": "livy",
      "spark.kubernetes.executor.label.app.kubernetes.io/instance": "ws",
      "spark.kubernetes.executor.label.app.kubernetes.io/component": "spark-executor",
      "spark.kubernetes.executor.label.livy.dev/executor-of": "ws",
      "spark.executor.instances": "2",
    });
  });

  it("maps every executor field to its Spark key", () => {
    const conf = sparkConf(
      input(
        spark({
          mode: "kubernetes",
          executors: {
            instances: 4,
            cores: 2,
            memory: "512m",
            memoryOverhead: "384m",
            cpuRequest: "100m",
            cpuLimit: 1,
            image: "apache/spark:3.5.7",
            imagePullPolicy: "Always",
            nodeSelector: { "kubernetes.io/arch": "amd64", pool: "spark" },
          },
        }),
      ),
    );
    expect(conf).toMatchObject({
      "spark.executor.instances": "4",
      "spark.executor.cores": "2",
      "spark.executor.memory": "512m",
      "spark.executor.memoryOverhead": "384m",
      "spark.kubernetes.executor.request.cores": "100m",
      "spark.kubernetes.executor.limit.cores": "1",
      "spark.kubernetes.container.image": "apache/spark:3.5.7",
      "spark.kubernetes.container.image.pullPolicy": "Always",
      "spark.kubernetes.executor.node.selector.kubernetes.io/arch": "amd64",
      "spark.kubernetes.executor.node.selector.pool": "spark",
    });
    expect(conf).not.toHaveProperty("spark.dynamicAllocation.enabled");
  });

  it("dynamic allocation with shuffle tracking; the idle timeout in one unit Spark reads", () => {
    const conf = sparkConf(
      input(
        spark({
          mode: "kubernetes",
          executors: {
            dynamicAllocation: { maxExecutors: 8, initialExecutors: 1, executorIdleTimeout: "1h30m" },
          },
        }),
      ),
    );
    expect(conf).toMatchObject({
      "spark.dynamicAllocation.enabled": "true",
      "spark.dynamicAllocation.shuffleTracking.enabled": "true",
      "spark.dynamicAllocation.minExecutors": "0",
      "spark.dynamicAllocation.maxExecutors": "8",
      "spark.dynamicAllocation.initialExecutors": "1",
      "spark.dynamicAllocation.executorIdleTimeout": "5400000ms",
    });
    expect(conf).not.toHaveProperty("spark.executor.instances");
  });
});

describe("the executor pod template", () => {
  it("runs executors hardened as the Livy pod, without a service-account token, with the tolerations", () => {
    const t = executorPodTemplate(
      spark({
        mode: "kubernetes",
        executors: { tolerations: [{ key: "spark", operator: "Exists", effect: "NoSchedule" }] },
      }),
    ) as { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } };
    expect(t.spec.automountServiceAccountToken).toBe(false);
    expect(t.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 185, fsGroup: 185 });
    expect(t.spec.tolerations).toEqual([{ key: "spark", operator: "Exists", effect: "NoSchedule" }]);
    expect(t.spec.containers[0]).toMatchObject({
      name: "spark-executor",
      securityContext: {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      },
    });
    expect(t.spec.containers[0]?.volumeMounts).toEqual([
      { name: "tmp", mountPath: "/tmp" },
      { name: "work", mountPath: "/opt/spark/work-dir" },
    ]);
    expect(executorPodTemplate(spark({ mode: "kubernetes" })).spec).not.toHaveProperty("tolerations");
  });

  it("travels in the session's conf as one line of ASCII JSON, not in the server's ConfigMap", () => {
    const s = spark({
      mode: "kubernetes",
      executors: { tolerations: [{ key: "example.com/spark", operator: "Equal", value: "yes" }] },
    });
    const json = sparkConf(input(s))["spark.livy-operator.executorPodTemplate"] ?? "";
    expect(JSON.parse(json)).toEqual(executorPodTemplate(s));
    // what the image's spark-submit wrapper relies on to undo java.util.Properties' escapes
    expect(json).toMatch(/^[\x20-\x7e]+$/);
    expect(json).not.toContain("\\");
    expect(Object.keys(desiredConfigMap(owner, undefined).data)).toEqual([
      "livy.conf",
      "livy-client.conf",
      "log4j.properties",
    ]);
  });
});

describe("the driver's pod and identity", () => {
  it("a local Deployment is unchanged by spec.spark; a kubernetes one runs as the driver's account with the pod's own facts", () => {
    const local = desiredDeployment(owner, undefined, defaults, "h");
    expect(desiredDeployment(owner, undefined, defaults, "h", false, spark({ mode: "local" }))).toEqual(
      local,
    );
    expect(local.spec.template.spec).toMatchObject({ automountServiceAccountToken: false });

    const d = desiredDeployment(owner, undefined, defaults, "h", false, spark({ mode: "kubernetes" }));
    const pod = d.spec.template.spec as Record<string, unknown>;
    expect(pod.serviceAccountName).toBe("livy-ws");
    expect(pod).not.toHaveProperty("automountServiceAccountToken");
    const env = d.spec.template.spec.containers[0]?.env ?? [];
    expect(env).toEqual(
      expect.arrayContaining([
        { name: "LIVY_POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        { name: "LIVY_POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
        { name: "LIVY_POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
      ]),
    );
  });

  it("uses spec.server.serviceAccountName as the driver's account, and then creates none", () => {
    const k8s = spark({ mode: "kubernetes" });
    expect(driverServiceAccountName(owner, { serviceAccountName: "etl" })).toBe("etl");
    expect(ownsDriverIdentity({ serviceAccountName: "etl" }, k8s)).toBe(false);
    expect(ownsDriverIdentity(undefined, k8s)).toBe(true);
    expect(ownsDriverIdentity(undefined, spark({ mode: "local" }))).toBe(false);
    const d = desiredDeployment(owner, { serviceAccountName: "etl" }, defaults, "h", false, k8s);
    expect(d.spec.template.spec).toMatchObject({ serviceAccountName: "etl" });
  });

  it("binds livy-<name> to the drivers' ClusterRole in the LivySession's namespace, owned by it", () => {
    const sa = desiredServiceAccount(owner);
    expect(sa.metadata).toMatchObject({ name: "livy-ws", namespace: "data" });
    expect(sa.metadata.ownerReferences[0]).toMatchObject({
      kind: "LivySession",
      uid: "u-1",
      controller: true,
    });
    const rb = desiredRoleBinding(owner, "livy-operator-spark-driver");
    expect(rb.metadata).toMatchObject({ name: "livy-ws", namespace: "data" });
    expect(rb.roleRef).toEqual({
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: "livy-operator-spark-driver",
    });
    expect(rb.subjects).toEqual([{ kind: "ServiceAccount", name: "livy-ws", namespace: "data" }]);
  });

  it("admits the session's executors to the driver's ports when NetworkPolicies are on", () => {
    const local = desiredNetworkPolicy(owner, "livy-operator");
    expect(local.spec.ingress).toHaveLength(1);
    const np = desiredNetworkPolicy(owner, "livy-operator", spark({ mode: "kubernetes" }));
    // the gateway's and the operator's rule is the same in both modes
    expect(np.spec.ingress[0]).toEqual(local.spec.ingress[0]);
    expect(np.spec.ingress).toHaveLength(2);
    // the policy selects the Livy pod only: executors, which the driver and each other reach on their block
    // managers, are not selected by it
    const selector = np.spec.podSelector.matchLabels;
    const executor = executorLabels("ws");
    expect(Object.entries(selector).every(([k, v]) => executor[k] === v)).toBe(false);
    expect(np.spec.ingress[1]).toEqual({
      from: [{ podSelector: { matchLabels: { "livy.dev/executor-of": "ws" } } }],
      ports: [
        { protocol: "TCP", port: 7078 },
        { protocol: "TCP", port: 7079 },
      ],
    });
  });
});

describe("decide() in kubernetes mode", () => {
  const K8S = { spark: { mode: "kubernetes", executors: { instances: 3, memory: "512m" } } };

  it("applies the driver's ServiceAccount and RoleBinding with the server, and no more in local mode", () => {
    const plan = step(world(resource(K8S))).plan;
    expect(plan.apply?.map((a) => a.kind)).toEqual([
      "serviceAccount",
      "roleBinding",
      "deployment",
      "configMap",
      "service",
    ]);
    const local = step(world(resource({}))).plan;
    expect(local.apply?.map((a) => a.kind)).toEqual(["deployment", "configMap", "service"]);
  });

  it("creates the Livy session with the derived conf under the user's own", () => {
    const spec = { ...K8S, session: { conf: { "spark.sql.shuffle.partitions": "4" }, driverMemory: "1g" } };
    const plan = step(world(resource(spec), { server: "available" }), { session: ok(null) }).plan;
    const body = plan.createLivySession?.body;
    expect(body?.driverMemory).toBe("1g");
    expect(body?.conf).toMatchObject({
      "spark.sql.shuffle.partitions": "4",
      "spark.livy-operator.mode": "kubernetes",
      "spark.executor.instances": "3",
      "spark.executor.memory": "512m",
      "spark.kubernetes.container.image": SETTINGS.defaultImage,
    });
    // local mode: the body is spec.session with only the built-in conf (SESSION_CONF_DEFAULTS) under it
    const local = step(world(resource({ session: { driverMemory: "1g" } }), { server: "available" }), {
      session: ok(null),
    }).plan;
    expect(local.createLivySession?.body.conf).toEqual(SESSION_CONF_DEFAULTS);
  });

  it("an executors edit replaces the Livy session only; a mode change restarts the server", () => {
    const st = readyStatus(K8S);
    // the Livy session as created from the first spec: its name ends with the digest of that body
    const name = step(world(resource(K8S), { server: "available" }), { session: ok(null) }).plan
      .createLivySession?.body.name;
    const live = ok(livySession(7, "idle", { name }));
    const more = { spark: { mode: "kubernetes", executors: { instances: 5, memory: "512m" } } };
    const edited = resource(more, { status: st, generation: 2 });
    const owned = serverOf(resource(K8S), "available");
    const p = step(world(edited, { owned }), { session: live }).plan;
    expect(cond(statusOf(p), "Ready")?.message).toMatch(/spec\.session or spec\.spark changed/);
    expect(p.apply).toBeUndefined();

    const toLocal = resource({}, { status: st, generation: 2 });
    const q = step(world(toLocal, { owned }), { session: live }).plan;
    expect(cond(statusOf(q), "Ready")?.message).toMatch(/spec\.server changed/);
    expect(q.deleteOwned).toEqual(["serviceAccount", "roleBinding"]);
  });

  it("puts the Spark UI's URL in status while the session is up, only when the template has {port}", () => {
    const st = readyStatus(K8S);
    expect(st.sparkUiURL).toBe("http://livy-ws.data.svc:4040");
    expect(readyStatus({}).sparkUiURL).toBe("http://livy-ws.data.svc:4040");
    const fixed = { ...SETTINGS, serverUrlTemplate: "http://127.0.0.1:8998" };
    const ls = resource({});
    const create = step(world(ls, { server: "available", settings: fixed }), { session: ok(null) }).plan;
    const ready = step(
      world(resource({}, { status: statusOf(create) }), { server: "available", settings: fixed }),
      { session: ok(livySession(7, "idle")) },
    ).plan;
    expect(statusOf(ready).sessionURL).toBe("http://127.0.0.1:8998/sessions/7");
    expect(statusOf(ready).sparkUiURL).toBeUndefined();
  });

  it("recreates a RoleBinding whose ClusterRole changed (roleRef cannot be updated)", () => {
    const ls = resource(K8S);
    const owned = serverOf(ls, "available");
    const settings = { ...SETTINGS, sparkDriverClusterRole: "other-driver-role" };
    const plan = step(world(ls, { owned, settings })).plan;
    expect(plan.deleteOwned).toEqual(["roleBinding"]);
    expect(plan.apply?.map((a) => a.kind)).toEqual(["roleBinding"]);
  });
});
