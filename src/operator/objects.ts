import { createHash } from "node:crypto";
import {
  CREDENTIAL_MOUNT_DIR,
  CREDENTIAL_SECRET_KEY,
  credentialLivyConf,
  credentialSecretName,
  LABEL_MANAGED_BY,
  LABEL_SESSION,
  labelsFor,
  MANAGED_BY,
  type SparkSpec,
  STARTUP_TIMEOUT_MAX,
  serverName,
} from "../api/index.ts";
import {
  BLOCK_MANAGER_PORT,
  DRIVER_COMPONENT,
  DRIVER_POD_ENV,
  DRIVER_PORT,
  EXECUTOR_LABEL,
  isKubernetesMode,
  LABEL_COMPONENT,
  SPARK_UI_PORT,
} from "./spark.ts";

/**
 * The objects the operator owns for one LivySession, built from its spec and the operator's defaults.
 * Pure: the reconciler applies what these return by server-side apply, and only when the spec hash on the
 * live object differs, so a steady state costs no writes.
 */

export const LIVY_PORT = 8998;
export const FIELD_MANAGER = "livy-operator";
export const SPEC_HASH_ANNOTATION = "livy.dev/spec-hash";
/** The label selector of the operator's caches of owned objects. */
export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;
export const SESSION_LABEL = LABEL_SESSION;
export { labelsFor, serverName };

/** The Livy image's layout (deploy/livy-image/). */
const LIVY_HOME = "/opt/livy";
const LIVY_UID = 185;

export interface OwnerRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid: string;
  /**
   * The server id the objects are named and labelled by (livy-<server>, livy.dev/session=<server>): a
   * LivySession's own name, or the pooled server it took over (status.server, docs/warm-pool.md).
   */
  server?: string | undefined;
}

/** The id a LivySession's server objects are named and labelled by. */
export function serverIdOf(owner: { name: string; server?: string | undefined }): string {
  return owner.server ?? owner.name;
}

export interface ServerInput {
  image?: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  env?: Array<{ name: string; value?: string; valueFrom?: Record<string, unknown> }>;
  envFrom?: Array<Record<string, unknown>>;
  imagePullSecrets?: Array<{ name: string }>;
  volumes?: Array<{ name: string } & Record<string, unknown>>;
  volumeMounts?: Array<{ name: string; mountPath: string } & Record<string, unknown>>;
  affinity?: Record<string, unknown>;
  priorityClassName?: string;
  livyConf?: Record<string, string>;
  serviceAccountName?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: Array<Record<string, unknown>>;
  podLabels?: Record<string, string>;
  podAnnotations?: Record<string, string>;
}

/** A container's environment variable: a value, or one from the downward API. */
export interface EnvVar {
  name: string;
  value?: string | undefined;
  valueFrom?: Record<string, unknown> | undefined;
}

export interface ObjectDefaults {
  image: string;
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
  resources: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
}

function ownerReference(owner: OwnerRef) {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.name,
    uid: owner.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function hashOf(value: unknown): string {
  return createHash("sha256").update(stableJson(value)).digest("hex").slice(0, 16);
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/**
 * Whether a LivySession's server demands the per-session credential (src/api/credential.ts): when the
 * operator has the shared key, unless the LivySession brings its own authentication (spec.auth, or an auth
 * type of its own in livyConf).
 */
export function usesCredential(
  spec: { auth?: unknown; server?: { livyConf?: Record<string, string> } | undefined },
  keyed: boolean,
): boolean {
  return keyed && !spec.auth && spec.server?.livyConf?.["livy.server.auth.type"] === undefined;
}

/**
 * livy.conf: the operator's settings first, then the user's livyConf (which may override them), then the
 * credential's filter when the server demands it (usesCredential: the user set no auth of their own).
 */
export function livyConf(
  user: Record<string, string> | undefined,
  credential = false,
): Record<string, string> {
  return {
    "livy.server.host": "0.0.0.0",
    "livy.server.port": String(LIVY_PORT),
    "livy.spark.master": "local[*]",
    "livy.spark.deploy-mode": "client",
    // The operator owns idleness (spec.idleTimeout); Livy's own timeout would kill sessions behind its back.
    "livy.server.session.timeout-check": "false",
    // Clients always send X-Requested-By, so CSRF protection costs them nothing.
    "livy.server.csrf-protection.enabled": "true",
    "livy.repl.enable-hive-context": "false",
    ...user,
    ...(credential ? credentialLivyConf() : {}),
  };
}

function renderConf(conf: Record<string, string>): string {
  return `${Object.entries(conf)
    .map(([k, v]) => `${k} = ${v}`)
    .join("\n")}\n`;
}

const LOG4J = `log4j.rootCategory=INFO, console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
log4j.logger.org.eclipse.jetty=WARN
`;

/**
 * livy-client.conf, read by Livy's session launcher from the conf directory (its classpath). Livy fails a
 * session whose Spark driver has not connected back within `livy.rsc.server.connect.timeout` (90 s by
 * default): on a loaded node (load average 40 on 2 cores) a driver took longer, and Livy killed a start
 * that spec.startupTimeout still allowed. The operator bounds the start (startupTimeout, at most
 * STARTUP_TIMEOUT_MAX), so Livy's own bound is set to that maximum and never cuts it shorter.
 */
export const LIVY_CLIENT_CONF: Record<string, string> = {
  "livy.rsc.server.connect.timeout": STARTUP_TIMEOUT_MAX,
};

export function desiredConfigMap(owner: OwnerRef, server: ServerInput | undefined, credential = false) {
  const data = {
    "livy.conf": renderConf(livyConf(server?.livyConf, credential)),
    "livy-client.conf": renderConf(LIVY_CLIENT_CONF),
    "log4j.properties": LOG4J,
  };
  return withHash({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: serverName(serverIdOf(owner)),
      namespace: owner.namespace,
      labels: labelsFor(serverIdOf(owner)),
      annotations: {} as Record<string, string>,
      ownerReferences: [ownerReference(owner)],
    },
    data,
  });
}

export function desiredService(owner: OwnerRef) {
  return withHash({
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: serverName(serverIdOf(owner)),
      namespace: owner.namespace,
      labels: labelsFor(serverIdOf(owner)),
      annotations: {} as Record<string, string>,
      ownerReferences: [ownerReference(owner)],
    },
    spec: {
      type: "ClusterIP",
      selector: { [SESSION_LABEL]: serverIdOf(owner) },
      ports: [
        { name: "http", port: LIVY_PORT, targetPort: "http", protocol: "TCP" },
        // the driver runs in the Livy pod in both modes; the port is numeric, so the pod needs no change
        { name: "spark-ui", port: SPARK_UI_PORT, targetPort: SPARK_UI_PORT, protocol: "TCP" },
      ],
    },
  });
}

/**
 * The driver's ServiceAccount in Kubernetes mode: spec.server.serviceAccountName when set (its RBAC is the
 * user's), else livy-<name>, which the operator creates and binds to the drivers' ClusterRole.
 */
export function driverServiceAccountName(owner: { name: string }, server: ServerInput | undefined): string {
  return server?.serviceAccountName ?? serverName(serverIdOf(owner));
}

/** Whether the operator creates the driver's ServiceAccount and RoleBinding for this spec. */
export function ownsDriverIdentity(server: ServerInput | undefined, spark: SparkSpec | undefined): boolean {
  return isKubernetesMode(spark) && !server?.serviceAccountName;
}

export function desiredDeployment(
  owner: OwnerRef,
  server: ServerInput | undefined,
  defaults: ObjectDefaults,
  configHash: string,
  credential = false,
  spark?: SparkSpec | undefined,
) {
  const labels = labelsFor(serverIdOf(owner));
  const kubernetes = isKubernetesMode(spark);
  const serviceAccountName = kubernetes
    ? driverServiceAccountName(owner, server)
    : server?.serviceAccountName;
  const usesServiceAccount = Boolean(serviceAccountName);
  return withHash({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: serverName(serverIdOf(owner)),
      namespace: owner.namespace,
      labels,
      annotations: {} as Record<string, string>,
      ownerReferences: [ownerReference(owner)],
    },
    spec: {
      replicas: 1,
      // never two Livy servers for one session, not even during a rollout
      strategy: { type: "Recreate" },
      revisionHistoryLimit: 1,
      selector: { matchLabels: { [SESSION_LABEL]: serverIdOf(owner) } },
      template: {
        metadata: {
          labels: { ...server?.podLabels, ...labels },
          annotations: { ...server?.podAnnotations, "livy.dev/config-hash": configHash },
        },
        spec: {
          // Kubernetes mode: the driver creates its executors through the API server with this token
          ...(usesServiceAccount ? { serviceAccountName } : { automountServiceAccountToken: false }),
          enableServiceLinks: false,
          ...(server?.imagePullSecrets?.length ? { imagePullSecrets: server.imagePullSecrets } : {}),
          ...(server?.priorityClassName ? { priorityClassName: server.priorityClassName } : {}),
          securityContext: {
            runAsNonRoot: true,
            runAsUser: LIVY_UID,
            runAsGroup: LIVY_UID,
            fsGroup: LIVY_UID,
            seccompProfile: { type: "RuntimeDefault" },
          },
          containers: [
            {
              name: "livy",
              image: server?.image ?? defaults.image,
              imagePullPolicy: server?.imagePullPolicy ?? defaults.imagePullPolicy,
              ports: [{ name: "http", containerPort: LIVY_PORT, protocol: "TCP" }],
              env: [
                { name: "LIVY_CONF_DIR", value: `${LIVY_HOME}/conf` },
                { name: "LIVY_LOG_DIR", value: `${LIVY_HOME}/logs` },
                { name: "SPARK_LOCAL_DIRS", value: "/tmp/spark" },
                ...(kubernetes ? DRIVER_POD_ENV : []),
                ...(server?.env ?? []),
              ] as EnvVar[],
              ...(server?.envFrom?.length ? { envFrom: server.envFrom } : {}),
              resources: server?.resources ?? defaults.resources,
              readinessProbe: {
                httpGet: { path: "/version", port: "http" },
                periodSeconds: 2,
                failureThreshold: 3,
              },
              // Livy's start (a JVM, then `spark-submit --version`) took 93 s at load average 18 on 2 cores:
              // the liveness probe waits for the first answer rather than a fixed delay, which killed slow
              // starts. startupTimeout bounds the attempt (up to 1h); this only keeps the kubelet out of it.
              startupProbe: {
                httpGet: { path: "/version", port: "http" },
                periodSeconds: 2,
                failureThreshold: 1800,
              },
              livenessProbe: {
                httpGet: { path: "/version", port: "http" },
                periodSeconds: 10,
                failureThreshold: 6,
              },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
              volumeMounts: [
                { name: "conf", mountPath: `${LIVY_HOME}/conf`, readOnly: true },
                { name: "logs", mountPath: `${LIVY_HOME}/logs` },
                { name: "tmp", mountPath: "/tmp" },
                { name: "work", mountPath: "/opt/spark/work-dir" },
                ...(server?.volumeMounts ?? []),
                ...(credential
                  ? [{ name: "credential", mountPath: CREDENTIAL_MOUNT_DIR, readOnly: true }]
                  : []),
              ],
            },
          ],
          volumes: [
            { name: "conf", configMap: { name: serverName(serverIdOf(owner)) } },
            { name: "logs", emptyDir: {} },
            { name: "tmp", emptyDir: {} },
            { name: "work", emptyDir: {} },
            ...(server?.volumes ?? []),
            ...(credential
              ? [
                  {
                    name: "credential",
                    secret: {
                      secretName: credentialSecretName(serverIdOf(owner)),
                      items: [{ key: CREDENTIAL_SECRET_KEY, path: CREDENTIAL_SECRET_KEY }],
                      defaultMode: 0o440,
                    },
                  },
                ]
              : []),
          ],
          ...(server?.nodeSelector ? { nodeSelector: server.nodeSelector } : {}),
          ...(server?.tolerations ? { tolerations: server.tolerations } : {}),
          ...(server?.affinity ? { affinity: server.affinity } : {}),
          terminationGracePeriodSeconds: 30,
        },
      },
    },
  });
}

function withHash<T extends { metadata: { annotations: Record<string, string> } }>(obj: T): T {
  obj.metadata.annotations[SPEC_HASH_ANNOTATION] = hashOf(obj);
  return obj;
}

/** True when the live object was applied from the same desired state. */
export function upToDate(
  live: { metadata?: { annotations?: Record<string, string> } } | undefined,
  desired: { metadata: { annotations: Record<string, string> } },
): boolean {
  return (
    live !== undefined &&
    live.metadata?.annotations?.[SPEC_HASH_ANNOTATION] === desired.metadata.annotations[SPEC_HASH_ANNOTATION]
  );
}

/** On the Deployment: the digest of the credential its server was given (a new key rewrites the Secret). */
export const CREDENTIAL_HASH_ANNOTATION = "livy.dev/credential-hash";

/** The Secret holding the LivySession's credential, mounted by its Livy pod (owned by the LivySession). */
export function desiredCredentialSecret(owner: OwnerRef, token: string) {
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: "Opaque",
    metadata: {
      name: credentialSecretName(serverIdOf(owner)),
      namespace: owner.namespace,
      labels: labelsFor(serverIdOf(owner)),
      // hashOf of the token, never the token: the operator compares digests, the Secret holds the value
      annotations: { [CREDENTIAL_HASH_ANNOTATION]: hashOf(token) } as Record<string, string>,
      ownerReferences: [ownerReference(owner)],
    },
    data: { [CREDENTIAL_SECRET_KEY]: Buffer.from(token).toString("base64") },
  };
}

/**
 * The driver's ServiceAccount (Kubernetes mode, unless spec.server.serviceAccountName names one): owned by the
 * LivySession like the server's other objects, and removed with them.
 */
export function desiredServiceAccount(owner: OwnerRef) {
  return withHash({
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: {
      name: serverName(serverIdOf(owner)),
      namespace: owner.namespace,
      labels: { ...labelsFor(serverIdOf(owner)), [LABEL_COMPONENT]: DRIVER_COMPONENT },
      annotations: {} as Record<string, string>,
      ownerReferences: [ownerReference(owner)],
    },
  });
}

/**
 * Binds the driver's ServiceAccount to the drivers' ClusterRole in the LivySession's namespace only (a
 * RoleBinding grants a ClusterRole's rules in its own namespace). The operator may create it because it
 * holds `bind` on that one ClusterRole, not the rights the ClusterRole grants (charts/livy-operator/README.md).
 */
export function desiredRoleBinding(owner: OwnerRef, clusterRole: string) {
  return withHash({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: {
      name: serverName(serverIdOf(owner)),
      namespace: owner.namespace,
      labels: { ...labelsFor(serverIdOf(owner)), [LABEL_COMPONENT]: DRIVER_COMPONENT },
      annotations: {} as Record<string, string>,
      ownerReferences: [ownerReference(owner)],
    },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: clusterRole },
    subjects: [{ kind: "ServiceAccount", name: serverName(serverIdOf(owner)), namespace: owner.namespace }],
  });
}

/**
 * With `--network-policy` (the default): only the gateway's pods (app.kubernetes.io/name=livy-gateway) and
 * the operator's, both in the operator's namespace, may reach the Livy server's port (and the Spark UI's).
 * Everything else is refused by the cluster's network plugin; where none enforces NetworkPolicies, the
 * per-session credential still refuses it. In Kubernetes mode the session's own executors (EXECUTOR_LABEL)
 * may also reach the driver's RPC and block manager ports, which Spark's client mode needs (executors
 * connect to the driver). The policy selects the Livy pod only and restricts ingress only: the driver's
 * connections to executors (their block managers, for indirect task results) and executor-to-executor
 * shuffle and broadcast fetches are not restricted by it; executors carry no livy.dev/session label.
 */
export function desiredNetworkPolicy(
  owner: OwnerRef,
  operatorNamespace: string,
  spark?: SparkSpec | undefined,
) {
  return withHash({
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: {
      name: serverName(serverIdOf(owner)),
      namespace: owner.namespace,
      labels: labelsFor(serverIdOf(owner)),
      annotations: {} as Record<string, string>,
      ownerReferences: [ownerReference(owner)],
    },
    spec: {
      podSelector: { matchLabels: { [SESSION_LABEL]: serverIdOf(owner) } },
      policyTypes: ["Ingress"],
      ingress: [
        {
          from: ["livy-operator", "livy-gateway"].map((app) => ({
            namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": operatorNamespace } },
            podSelector: { matchLabels: { "app.kubernetes.io/name": app } },
          })),
          // the Spark UI (status.sparkUiURL) too, for the same two; kubectl port-forward is not subject to it
          ports: [
            { protocol: "TCP", port: LIVY_PORT },
            { protocol: "TCP", port: SPARK_UI_PORT },
          ],
        },
        // Kubernetes mode: the session's executors connect to the driver (RPC and block manager)
        ...(isKubernetesMode(spark)
          ? [
              {
                from: [{ podSelector: { matchLabels: { [EXECUTOR_LABEL]: serverIdOf(owner) } } }],
                ports: [
                  { protocol: "TCP", port: DRIVER_PORT },
                  { protocol: "TCP", port: BLOCK_MANAGER_PORT },
                ],
              },
            ]
          : []),
      ],
    },
  });
}
