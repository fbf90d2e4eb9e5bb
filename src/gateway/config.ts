import { Command, Option } from "commander";
import { z } from "zod";

const namespaceName = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "not a namespace name");

/** The gateway's configuration: flags first, then LIVY_GATEWAY_* environment variables, then defaults. */
export const GatewayConfigSchema = z
  .object({
    kubeconfig: z.string().optional(),
    namespaces: z.array(namespaceName).default([]),
    host: z.string().default("0.0.0.0"),
    port: z.number().int().min(0).max(65535).default(8998),
    tlsCertFile: z.string().optional(),
    tlsKeyFile: z.string().optional(),
    httpHost: z.string().default("0.0.0.0"),
    httpPort: z.number().int().min(0).max(65535).default(8080),
    holdTimeoutMs: z.number().int().min(100).max(3_600_000).default(600_000),
    maxHeldPerSession: z.number().int().min(0).max(100_000).default(256),
    maxHeldTotal: z.number().int().min(0).max(1_000_000).default(10_000),
    retryAfterSeconds: z.number().int().min(1).max(3_600).default(5),
    upstreamTimeoutMs: z.number().int().min(100).max(600_000).default(60_000),
    maxBodyBytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024 * 1024)
      .default(16 * 1024 * 1024),
    authnCacheTtlMs: z.number().int().min(0).max(3_600_000).default(30_000),
    authzCacheTtlMs: z.number().int().min(0).max(3_600_000).default(10_000),
    negativeCacheTtlMs: z.number().int().min(0).max(3_600_000).default(5_000),
    cacheMaxEntries: z.number().int().min(1).max(1_000_000).default(10_000),
    tokenAudiences: z.array(z.string().min(1)).default([]),
    idempotencyWindow: z.number().int().min(1).max(1_000).default(50),
    livyVersion: z.string().min(1).default("0.9.0-incubating"),
    sessionKeySecret: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/, "namespace/name of a Secret")
      .optional(),
    readAuthSecrets: z.boolean().default(false),
    apiserverHost: z.string().default("0.0.0.0"),
    apiserverPort: z.number().int().min(0).max(65535).default(0),
    apiserverTlsSecret: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/, "namespace/name of a Secret")
      .optional(),
    apiserverDnsNames: z.array(z.string().min(1)).default([]),
    apiService: z.string().optional(),
    shutdownDelayMs: z.number().int().min(0).max(600_000).default(3_000),
    shutdownTimeoutMs: z.number().int().min(0).max(3_600_000).default(25_000),
    watchStallTimeoutMs: z.number().int().min(500).max(3_600_000).default(120_000),
    logLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info"),
  })
  .strict()
  .refine((c) => Boolean(c.tlsCertFile) === Boolean(c.tlsKeyFile), {
    message: "--tls-cert-file and --tls-key-file go together",
    path: ["tlsCertFile"],
  })
  .refine((c) => c.apiserverPort === 0 || (c.apiserverTlsSecret && c.apiserverDnsNames.length > 0), {
    message:
      "--apiserver-port needs --apiserver-tls-secret and --apiserver-dns-names (the serving certificate)",
    path: ["apiserverPort"],
  });

export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;

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

type Parser = (v: string) => unknown;
/** flag name, config key, parser, help */
export const GATEWAY_FIELDS: Array<[string, keyof GatewayConfig, Parser, string]> = [
  [
    "kubeconfig",
    "kubeconfig",
    String,
    "path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)",
  ],
  [
    "namespaces",
    "namespaces",
    list,
    "comma-separated namespaces whose LivySessions are served (default: all)",
  ],
  ["host", "host", String, "address of the Livy API"],
  ["port", "port", num, "port of the Livy API"],
  [
    "tls-cert-file",
    "tlsCertFile",
    String,
    "serve the Livy API over TLS with this certificate (PEM, reloaded when it changes)",
  ],
  ["tls-key-file", "tlsKeyFile", String, "the certificate's private key (PEM)"],
  ["http-host", "httpHost", String, "address of /healthz, /readyz and /metrics"],
  ["http-port", "httpPort", num, "port of /healthz, /readyz and /metrics"],
  [
    "hold-timeout-ms",
    "holdTimeoutMs",
    num,
    "longest a request waits for its LivySession to become Ready (a client's Prefer: wait=N shortens it)",
  ],
  [
    "max-held-per-session",
    "maxHeldPerSession",
    num,
    "requests held per LivySession while it starts; more get 503 with Retry-After",
  ],
  ["max-held-total", "maxHeldTotal", num, "requests held in all; more get 503 with Retry-After"],
  ["retry-after-seconds", "retryAfterSeconds", num, "Retry-After of 503 and 504 answers"],
  ["upstream-timeout-ms", "upstreamTimeoutMs", num, "timeout of each request forwarded to a Livy server"],
  ["max-body-bytes", "maxBodyBytes", num, "largest request body accepted"],
  ["authn-cache-ttl-ms", "authnCacheTtlMs", num, "how long a successful TokenReview is reused"],
  ["authz-cache-ttl-ms", "authzCacheTtlMs", num, "how long an allowing SubjectAccessReview is reused"],
  ["negative-cache-ttl-ms", "negativeCacheTtlMs", num, "how long a refused token or a denial is reused"],
  [
    "cache-max-entries",
    "cacheMaxEntries",
    num,
    "entries of each decision cache (least recently used go first)",
  ],
  ["token-audiences", "tokenAudiences", list, "audiences a token must carry (default: the API server's)"],
  [
    "idempotency-window",
    "idempotencyWindow",
    num,
    "newest statements searched for an Idempotency-Key already served",
  ],
  [
    "livy-version",
    "livyVersion",
    String,
    "the version GET /version reports while a session's server is down",
  ],
  [
    "session-key-secret",
    "sessionKeySecret",
    String,
    "namespace/name of the Secret with the key shared with the operator: the per-session credentials derive from it",
  ],
  [
    "apiserver-port",
    "apiserverPort",
    num,
    "port of the API server's aggregation layer (HTTPS, front-proxy client certificates only); 0: off",
  ],
  ["apiserver-host", "apiserverHost", String, "address of that port"],
  [
    "apiserver-tls-secret",
    "apiserverTlsSecret",
    String,
    "namespace/name of the kubernetes.io/tls Secret with its serving certificate (made, self-signed, when missing)",
  ],
  ["apiserver-dns-names", "apiserverDnsNames", list, "DNS names of that certificate (the gateway Service's)"],
  [
    "api-service",
    "apiService",
    String,
    "the APIService (gateway.livy.dev) whose caBundle the gateway keeps equal to that certificate",
  ],
  [
    "read-auth-secrets",
    "readAuthSecrets",
    bool,
    "read the Secret of a LivySession's spec.auth (needs get on secrets) to reach servers with their own authentication",
  ],
  [
    "shutdown-delay-ms",
    "shutdownDelayMs",
    num,
    "after SIGTERM, keep accepting requests this long (unready) while endpoints drop this replica",
  ],
  [
    "shutdown-timeout-ms",
    "shutdownTimeoutMs",
    num,
    "after SIGTERM, wait this long for requests in flight; held requests then get 503",
  ],
  [
    "watch-stall-timeout-ms",
    "watchStallTimeoutMs",
    num,
    "a silent LivySession watch is restarted after this long",
  ],
  ["log-level", "logLevel", String, "trace | debug | info | warn | error"],
];

export function gatewayEnvName(flag: string): string {
  return `LIVY_GATEWAY_${flag.toUpperCase().replaceAll("-", "_")}`;
}

export class GatewayConfigError extends Error {
  override name = "GatewayConfigError";
}

/** Reads argv and env into a validated config, or throws GatewayConfigError naming each bad setting. */
export function loadGatewayConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const cmd = new Command("livy-gateway")
    .description(
      "The Livy-compatible front door of LivySessions: Kubernetes authentication and RBAC, transparent wake",
    )
    .exitOverride()
    .allowExcessArguments(false);
  for (const [flag, , , help] of GATEWAY_FIELDS) {
    cmd.addOption(new Option(`--${flag} <value>`, `${help} [env ${gatewayEnvName(flag)}]`));
  }
  cmd.parse(argv, { from: "user" });
  const flags = cmd.opts<Record<string, string | undefined>>();
  const raw: Record<string, unknown> = {};
  for (const [flag, key, parse] of GATEWAY_FIELDS) {
    const camel = flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const v = flags[camel] ?? env[gatewayEnvName(flag)];
    if (v !== undefined && v !== "") raw[key] = parse(v);
  }
  const parsed = GatewayConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const key = String(i.path[0] ?? "");
      const field = GATEWAY_FIELDS.find((f) => f[1] === key);
      const where = field ? `--${field[0]} / ${gatewayEnvName(field[0])}` : key;
      return `  ${where}: ${i.message}`;
    });
    throw new GatewayConfigError(`invalid configuration:\n${problems.join("\n")}`);
  }
  return parsed.data;
}
