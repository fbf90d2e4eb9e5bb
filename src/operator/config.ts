import { hostname } from "node:os";
import { Command, Option } from "commander";
import { z } from "zod";
import { serverDefaultsField, sessionConfDefaultsField } from "./defaults.ts";

const quantity = z.union([
  z.string().regex(/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]i?|Ki|Mi|Gi|Ti|Pi|Ei)?$/),
  z.number(),
]);
const resources = z
  .object({
    requests: z.record(z.string(), quantity).optional(),
    limits: z.record(z.string(), quantity).optional(),
  })
  .strict();

/** The operator's configuration: flags first, then LIVY_OPERATOR_* environment variables, then defaults. */
export const OperatorConfigSchema = z
  .object({
    kubeconfig: z.string().optional(),
    namespaces: z
      .array(z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "not a namespace name"))
      .default([]),
    defaultImage: z.string().min(1).default("ghcr.io/livy-operator/livy-server:0.9.0-incubating-spark-3.5.7"),
    defaultImagePullPolicy: z.enum(["Always", "IfNotPresent", "Never"]).default("IfNotPresent"),
    defaultResources: resources.default({
      requests: { cpu: "500m", memory: "1Gi" },
      limits: { memory: "2Gi" },
    }),
    /** spec.server fields every LivySession gets unless it sets its own (defaults.ts: the precedence). */
    defaultServer: serverDefaultsField.optional(),
    /** Spark conf under every LivySession's spec.session.conf. */
    defaultSessionConf: sessionConfDefaultsField.optional(),
    serverUrlTemplate: z
      .string()
      // with a namespace, name and service name of at most 63 characters each, the URLs fit status.serverURL
      .max(1_024)
      .refine((t) => /^https?:\/\//.test(t.replaceAll(/\{[a-z]+\}/g, "x")), "must be an http(s) URL template")
      .refine(
        (t) =>
          [...t.matchAll(/\{([a-z]+)\}/g)].every((m) =>
            ["name", "namespace", "service", "port"].includes(m[1] ?? ""),
          ),
        {
          message: "placeholders are {name}, {namespace}, {service} and {port}",
        },
      )
      .default("http://{service}.{namespace}.svc:{port}"),
    concurrency: z.number().int().min(1).max(256).default(16),
    sessionPollIntervalMs: z.number().int().min(100).max(300_000).default(5_000),
    livyRequestTimeoutMs: z.number().int().min(100).max(120_000).default(5_000),
    livyFailureThreshold: z.number().int().min(1).max(100).default(3),
    livyFailureWindowMs: z.number().int().min(0).max(3_600_000).default(15_000),
    watchStallTimeoutMs: z.number().int().min(500).max(3_600_000).default(120_000),
    watchTimeoutSeconds: z.number().int().min(1).max(3_600).optional(),
    leaderElect: z.boolean().default(false),
    leaderElectionNamespace: z.string().default("default"),
    leaderElectionId: z.string().default("livy-operator-leader"),
    identity: z.string().default(`${hostname()}-${process.pid}`),
    logLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info"),
    networkPolicy: z.boolean().default(true),
    sessionKeySecret: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/, "namespace/name of a Secret")
      .optional(),
    networkPolicyOperatorNamespace: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "not a namespace name")
      .default("livy-operator"),
    sparkDriverClusterRole: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$/, "not a ClusterRole name")
      .max(253)
      .default("livy-operator-spark-driver"),
    httpPort: z.number().int().min(0).max(65535).default(8080),
    httpHost: z.string().default("0.0.0.0"),
  })
  .strict();

export type OperatorConfig = z.infer<typeof OperatorConfigSchema>;

const num = (v: string) => {
  const n = Number(v);
  return Number.isFinite(n) ? n : Number.NaN;
};
const bool = (v: string) => ["1", "true", "yes", "on"].includes(v.toLowerCase());
const list = (v: string) =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
const json = (v: string): unknown => {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
};

type Parser = (v: string) => unknown;
/** flag name, env suffix, config key, parser */
export const FIELDS: Array<[string, keyof OperatorConfig, Parser, string]> = [
  [
    "kubeconfig",
    "kubeconfig",
    String,
    "path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)",
  ],
  ["namespaces", "namespaces", list, "comma-separated namespaces to watch (default: all)"],
  ["default-image", "defaultImage", String, "Livy server image when a LivySession sets none"],
  ["default-image-pull-policy", "defaultImagePullPolicy", String, "Always | IfNotPresent | Never"],
  ["default-resources", "defaultResources", json, 'JSON {"requests":{...},"limits":{...}} for Livy servers'],
  [
    "default-server",
    "defaultServer",
    json,
    'JSON of spec.server fields every LivySession gets unless it sets its own (env, envFrom, imagePullSecrets, volumes, volumeMounts, affinity, priorityClassName, serviceAccountName, nodeSelector, tolerations, podLabels, podAnnotations, livyConf), e.g. {"imagePullSecrets":[{"name":"regcred"}]}',
  ],
  [
    "default-session-conf",
    "defaultSessionConf",
    json,
    "JSON map of Spark conf under every LivySession's spec.session.conf (its own keys win)",
  ],
  [
    "server-url-template",
    "serverUrlTemplate",
    String,
    "URL of a session's Livy server: {name} {namespace} {service} {port}",
  ],
  ["concurrency", "concurrency", num, "LivySessions reconciled at once"],
  [
    "session-poll-interval-ms",
    "sessionPollIntervalMs",
    num,
    "how often a Ready session's Livy state is checked",
  ],
  ["livy-request-timeout-ms", "livyRequestTimeoutMs", num, "timeout of each request to a Livy server"],
  [
    "livy-failure-threshold",
    "livyFailureThreshold",
    num,
    "consecutive failed looks at a Ready session's Livy server before its failure policy acts",
  ],
  [
    "livy-failure-window-ms",
    "livyFailureWindowMs",
    num,
    "and the least time those failures must span (a probe's failureThreshold × period)",
  ],
  [
    "watch-stall-timeout-ms",
    "watchStallTimeoutMs",
    num,
    "a watch that delivers nothing, not even a bookmark, this long is restarted (the API server bookmarks about once a minute)",
  ],
  [
    "watch-timeout-seconds",
    "watchTimeoutSeconds",
    num,
    "server-side timeout of each watch, then it resumes (default: random 240-360 s)",
  ],
  ["leader-elect", "leaderElect", bool, "elect a leader with a Lease (needed with replicas > 1)"],
  ["leader-election-namespace", "leaderElectionNamespace", String, "namespace of the leader Lease"],
  ["leader-election-id", "leaderElectionId", String, "name of the leader Lease"],
  ["identity", "identity", String, "this replica's identity in the Lease (default: hostname-pid)"],
  ["log-level", "logLevel", String, "trace | debug | info | warn | error"],
  [
    "network-policy",
    "networkPolicy",
    bool,
    "give each Livy server a NetworkPolicy admitting only the gateway's pods and the operator's (both in --network-policy-operator-namespace)",
  ],
  [
    "network-policy-operator-namespace",
    "networkPolicyOperatorNamespace",
    String,
    "the operator's and the gateway's namespace, admitted by those NetworkPolicies",
  ],
  [
    "session-key-secret",
    "sessionKeySecret",
    String,
    "namespace/name of the Secret with the key shared with the gateway (made when missing): each Livy server then demands its LivySession's credential",
  ],
  [
    "spark-driver-cluster-role",
    "sparkDriverClusterRole",
    String,
    "ClusterRole bound (by a RoleBinding in its namespace) to the driver of each LivySession in Spark's kubernetes mode; the operator needs `bind` on it",
  ],
  ["http-port", "httpPort", num, "port of /healthz, /readyz and /metrics"],
  ["http-host", "httpHost", String, "address of /healthz, /readyz and /metrics"],
];

export function envName(flag: string): string {
  return `LIVY_OPERATOR_${flag.toUpperCase().replaceAll("-", "_")}`;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Reads argv and env into a validated config, or throws ConfigError naming each bad setting. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): OperatorConfig {
  const cmd = new Command("livy-operator")
    .description("Kubernetes operator for interactive Apache Livy sessions (LivySession, livy.dev/v1alpha1)")
    .exitOverride()
    .allowExcessArguments(false);
  for (const [flag, , , help] of FIELDS) {
    cmd.addOption(new Option(`--${flag} <value>`, `${help} [env ${envName(flag)}]`));
  }
  cmd.parse(argv, { from: "user" });
  const flags = cmd.opts<Record<string, string | undefined>>();
  const raw: Record<string, unknown> = {};
  for (const [flag, key, parse] of FIELDS) {
    const camel = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const v = flags[camel] ?? env[envName(flag)];
    if (v !== undefined && v !== "") raw[key] = parse(v);
  }
  const parsed = OperatorConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const key = String(i.path[0] ?? "");
      const field = FIELDS.find((f) => f[1] === key);
      const where = field ? `--${field[0]} / ${envName(field[0])}` : key;
      return `  ${where}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
  }
  return parsed.data;
}

/** The URL of a session's Livy server, from the configured template. */
export function serverUrl(
  template: string,
  v: { name: string; namespace: string; service: string; port: number },
): string {
  return template
    .replaceAll("{name}", v.name)
    .replaceAll("{namespace}", v.namespace)
    .replaceAll("{service}", v.service)
    .replaceAll("{port}", String(v.port))
    .replace(/\/$/, "");
}
