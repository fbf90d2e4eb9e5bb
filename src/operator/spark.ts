/**
 * Spark on Kubernetes, as pure functions of the spec: the Spark conf a Livy session gets in Kubernetes mode,
 * the executor pod template, and the driver's identity (ServiceAccount and RoleBinding). The design and
 * why each choice is made: docs/spark-on-kubernetes.md.
 *
 * Kubernetes mode runs Spark in client mode: the driver is Livy's spark-submit child inside the Livy server's
 * pod (as in local mode), and the executors are pods in the LivySession's namespace that Spark's scheduler
 * creates through the API server with the driver's ServiceAccount. Executors are owned by the Livy pod
 * (spark.kubernetes.driver.pod.name), so the garbage collector removes them with the server, whatever
 * happens to the operator.
 */
import {
  type ExecutorsSpec,
  LABEL_INSTANCE,
  LABEL_NAME,
  LABEL_NAME_VALUE,
  parseDuration,
  SPARK_MODE_CONF_KEY,
  type SparkSpec,
} from "../api/index.ts";

/** The Spark UI of the driver, in the Livy pod; the Service exposes it in every mode. */
export const SPARK_UI_PORT = 4040;
/** The driver's RPC port and the block managers' port, fixed so that a NetworkPolicy can admit executors. */
export const DRIVER_PORT = 7078;
export const BLOCK_MANAGER_PORT = 7079;

/** The label that selects a LivySession's executor pods: `kubectl get pods -l livy.dev/executor-of=<name>`. */
export const EXECUTOR_LABEL = "livy.dev/executor-of";
export const LABEL_COMPONENT = "app.kubernetes.io/component";
export const EXECUTOR_COMPONENT = "spark-executor";
export const DRIVER_COMPONENT = "spark-driver";

/**
 * The executor pod template travels in the Livy session's conf, as one line of JSON, and the image's
 * spark-submit wrapper writes it to a file for spark.kubernetes.executor.podTemplateFile: so that everything
 * a session's executors are made of comes with the session (nothing in the server's ConfigMap, which a
 * server started before it, from a pool, would not have), and an executors edit replaces only the Livy
 * session, never the server.
 */
export const EXECUTOR_POD_TEMPLATE_CONF_KEY = "spark.livy-operator.executorPodTemplate";

/** Executors when spec.spark.executors sets neither instances nor dynamicAllocation. */
export const DEFAULT_EXECUTOR_INSTANCES = 2;

/**
 * The downward-API environment of the Livy container in Kubernetes mode, which the image's spark-submit
 * wrapper turns into spark.kubernetes.driver.pod.name, spark.driver.host and spark.kubernetes.namespace: only
 * the pod knows them, and a Livy session created on any pod (a pooled one too) gets its own.
 */
export const DRIVER_POD_ENV = [
  { name: "LIVY_POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
  { name: "LIVY_POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
  { name: "LIVY_POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
];

/** The Livy image's user (deploy/livy-image), which Spark's own images share. */
const SPARK_UID = 185;

export function isKubernetesMode(spark: SparkSpec | undefined): boolean {
  return spark?.mode === "kubernetes";
}

/** The labels of a LivySession's executor pods. */
export function executorLabels(name: string): Record<string, string> {
  return {
    [LABEL_NAME]: LABEL_NAME_VALUE,
    [LABEL_INSTANCE]: name,
    [LABEL_COMPONENT]: EXECUTOR_COMPONENT,
    [EXECUTOR_LABEL]: name,
  };
}

export interface SparkConfInput {
  /** The LivySession's name. */
  name: string;
  spark: SparkSpec | undefined;
  /** The executor image when spec.spark.executors sets none: the Livy server's, and its pull policy. */
  serverImage: string;
  serverImagePullPolicy: "Always" | "IfNotPresent" | "Never";
}

/**
 * The Spark conf the operator adds to the Livy session's conf in Kubernetes mode ({} in local mode, so a
 * local session's body is what the spec says). The admission rules keep spec.session.conf from setting any
 * of these keys (SPARK_CONF_FROM_SPEC, SPARK_CONF_RESERVED).
 */
export function sparkConf(input: SparkConfInput): Record<string, string> {
  if (!isKubernetesMode(input.spark)) return {};
  const ex: ExecutorsSpec = input.spark?.executors ?? {};
  const conf: Record<string, string> = {
    // the mark the image's spark-submit wrapper acts on: master k8s://, client mode, the pod's own settings
    [SPARK_MODE_CONF_KEY]: "kubernetes",
    "spark.kubernetes.container.image": ex.image ?? input.serverImage,
    "spark.kubernetes.container.image.pullPolicy": ex.imagePullPolicy ?? input.serverImagePullPolicy,
    // JSON (a YAML document to Spark) of ASCII only: the properties file Livy writes escapes nothing the
    // wrapper's unescaping does not undo (spec fields that reach it are label values, keys and enums)
    [EXECUTOR_POD_TEMPLATE_CONF_KEY]: JSON.stringify(executorPodTemplate(input.spark)),
    // never leave a finished executor's pod behind (Spark's default, stated: the guarantee relies on it)
    "spark.kubernetes.executor.deleteOnTermination": "true",
    "spark.driver.port": String(DRIVER_PORT),
    "spark.blockManager.port": String(BLOCK_MANAGER_PORT),
  };
  for (const [k, v] of Object.entries(executorLabels(input.name)))
    conf[`spark.kubernetes.executor.label.${k}`] = v;
  for (const [k, v] of Object.entries(ex.nodeSelector ?? {}))
    conf[`spark.kubernetes.executor.node.selector.${k}`] = v;
  const dyn = ex.dynamicAllocation;
  if (dyn) {
    conf["spark.dynamicAllocation.enabled"] = "true";
    // executors keep the shuffle files they wrote: with tracking, Spark removes only those no stage needs
    // (there is no external shuffle service on Kubernetes)
    conf["spark.dynamicAllocation.shuffleTracking.enabled"] = "true";
    conf["spark.dynamicAllocation.minExecutors"] = String(dyn.minExecutors);
    conf["spark.dynamicAllocation.maxExecutors"] = String(dyn.maxExecutors);
    if (dyn.initialExecutors !== undefined)
      conf["spark.dynamicAllocation.initialExecutors"] = String(dyn.initialExecutors);
    // Spark's time strings take one unit: "1h30m" is given as milliseconds
    if (dyn.executorIdleTimeout !== undefined)
      conf["spark.dynamicAllocation.executorIdleTimeout"] = `${parseDuration(dyn.executorIdleTimeout)}ms`;
  } else {
    conf["spark.executor.instances"] = String(ex.instances ?? DEFAULT_EXECUTOR_INSTANCES);
  }
  if (ex.cores !== undefined) conf["spark.executor.cores"] = String(ex.cores);
  if (ex.memory !== undefined) conf["spark.executor.memory"] = ex.memory;
  if (ex.memoryOverhead !== undefined) conf["spark.executor.memoryOverhead"] = ex.memoryOverhead;
  if (ex.cpuRequest !== undefined) conf["spark.kubernetes.executor.request.cores"] = String(ex.cpuRequest);
  if (ex.cpuLimit !== undefined) conf["spark.kubernetes.executor.limit.cores"] = String(ex.cpuLimit);
  return conf;
}

/**
 * The pod template Spark starts each executor pod from (Spark adds the container's image, command
 * arguments, environment, resources and labels): the hardening of the Livy pod (non-root uid 185, no
 * privilege escalation, no capabilities, read-only root filesystem with emptyDirs where Spark writes: /tmp
 * and the working directory, where executors fetch the session's files), no service-account token
 * (executors never call the API server), and the tolerations, which Spark has no conf for.
 */
export function executorPodTemplate(spark: SparkSpec | undefined): Record<string, unknown> {
  const tolerations = spark?.executors?.tolerations;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {},
    spec: {
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: SPARK_UID,
        runAsGroup: SPARK_UID,
        fsGroup: SPARK_UID,
        seccompProfile: { type: "RuntimeDefault" },
      },
      ...(tolerations?.length ? { tolerations } : {}),
      containers: [
        {
          name: "spark-executor",
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ["ALL"] },
          },
          volumeMounts: [
            { name: "tmp", mountPath: "/tmp" },
            { name: "work", mountPath: "/opt/spark/work-dir" },
          ],
        },
      ],
      volumes: [
        { name: "tmp", emptyDir: {} },
        { name: "work", emptyDir: {} },
      ],
    },
  };
}
