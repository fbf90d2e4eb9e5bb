import { z } from "zod";
import {
  formatIssues,
  SESSION_CONF_DEFAULTS,
  type ServerSpec,
  type SessionSpec,
  serverSchema,
  sessionSchema,
} from "../api/index.ts";

/**
 * Operator-wide defaults for the Livy pods and the Livy sessions of every LivySession (`--default-server`,
 * `--default-session-conf`; the chart's `livyServer.*` values), and how a LivySession's own spec is laid over
 * them. Pure, so that the precedence is one function, unit-tested, and documented in the README:
 *
 * - scalars (priorityClassName, serviceAccountName) and affinity: the LivySession's when it sets them, else
 *   the default (affinity as a whole: two affinities do not combine into what either author meant);
 * - maps (nodeSelector, podLabels, podAnnotations, livyConf, session conf): merged per key, the
 *   LivySession's value winning;
 * - lists keyed by name (env, imagePullSecrets, volumes) or by mountPath (volumeMounts): merged per key, the
 *   LivySession's entry replacing the default's with the same key, the defaults first;
 * - envFrom and tolerations: the defaults' entries, then the LivySession's (later envFrom sources win for a
 *   variable in both; tolerations only ever permit more);
 * - image, imagePullPolicy and resources keep their own settings (`--default-image`, ...), so they are not
 *   accepted here.
 */

/** The spec.server fields an operator-wide default may set. */
export const DEFAULT_SERVER_FIELDS = [
  "env",
  "envFrom",
  "imagePullSecrets",
  "volumes",
  "volumeMounts",
  "affinity",
  "priorityClassName",
  "serviceAccountName",
  "nodeSelector",
  "tolerations",
  "podLabels",
  "podAnnotations",
  "livyConf",
] as const;

export type ServerDefaults = Pick<ServerSpec, (typeof DEFAULT_SERVER_FIELDS)[number]>;
export type SessionConf = NonNullable<SessionSpec["conf"]>;

/**
 * Parses `--default-server`: the same schema (and so the same rules and messages) as a LivySession's
 * spec.server, limited to DEFAULT_SERVER_FIELDS. A message naming each bad field, or the defaults.
 */
export function parseServerDefaults(
  value: unknown,
): { ok: true; value: ServerDefaults } | { ok: false; message: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { ok: false, message: "must be a JSON object of spec.server fields" };
  const allowed: readonly string[] = DEFAULT_SERVER_FIELDS;
  const other = Object.keys(value).filter((k) => !allowed.includes(k));
  if (other.length)
    return {
      ok: false,
      message: `${other.join(", ")}: not an operator-wide default here (image, imagePullPolicy and resources have --default-image, --default-image-pull-policy and --default-resources); allowed: ${allowed.join(", ")}`,
    };
  const r = serverSchema.safeParse(value);
  if (!r.success) return { ok: false, message: formatIssues(r.error) };
  return { ok: true, value: r.data };
}

/** Parses `--default-session-conf` with spec.session.conf's own schema. */
export function parseSessionConfDefaults(
  value: unknown,
): { ok: true; value: SessionConf } | { ok: false; message: string } {
  const r = sessionSchema.safeParse({ conf: value });
  if (!r.success) return { ok: false, message: formatIssues(r.error).replaceAll(/(^|; )conf/g, "$1") };
  return { ok: true, value: r.data.conf ?? {} };
}

/** The zod field of OperatorConfig for --default-server: checked by parseServerDefaults. */
export const serverDefaultsField = z.unknown().transform((v, ctx) => {
  const r = parseServerDefaults(v);
  if (!r.ok) {
    ctx.addIssue({ code: "custom", message: r.message });
    return z.NEVER;
  }
  return r.value;
});

export const sessionConfDefaultsField = z.unknown().transform((v, ctx) => {
  const r = parseSessionConfDefaults(v);
  if (!r.ok) {
    ctx.addIssue({ code: "custom", message: r.message });
    return z.NEVER;
  }
  return r.value;
});

function mergeMap<V>(base: Record<string, V> | undefined, own: Record<string, V> | undefined) {
  if (base === undefined || Object.keys(base).length === 0) return own;
  return { ...base, ...own };
}

function mergeKeyed<T>(base: T[] | undefined, own: T[] | undefined, key: (t: T) => string): T[] | undefined {
  if (base === undefined || base.length === 0) return own;
  if (own === undefined || own.length === 0) return base;
  const mine = new Map(own.map((o) => [key(o), o]));
  const out = base.map((b) => mine.get(key(b)) ?? b);
  const baseKeys = new Set(base.map(key));
  return [...out, ...own.filter((o) => !baseKeys.has(key(o)))];
}

function concat<T>(base: T[] | undefined, own: T[] | undefined): T[] | undefined {
  if (base === undefined || base.length === 0) return own;
  return [...base, ...(own ?? [])];
}

/** Drops undefined entries, so that a merged spec equals (and hashes as) the one written without them. */
function defined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** A LivySession's spec.server laid over the operator's defaults (the precedence above). */
export function withServerDefaults(
  defaults: ServerDefaults | undefined,
  own: ServerSpec | undefined,
): ServerSpec | undefined {
  if (defaults === undefined || Object.keys(defaults).length === 0) return own;
  const s: ServerSpec = own ?? {};
  return defined({
    ...s,
    env: mergeKeyed(defaults.env, s.env, (e) => e.name),
    envFrom: concat(defaults.envFrom, s.envFrom),
    imagePullSecrets: mergeKeyed(defaults.imagePullSecrets, s.imagePullSecrets, (p) => p.name),
    volumes: mergeKeyed(defaults.volumes, s.volumes, (v) => v.name),
    volumeMounts: mergeKeyed(defaults.volumeMounts, s.volumeMounts, (m) => m.mountPath),
    affinity: s.affinity ?? defaults.affinity,
    priorityClassName: s.priorityClassName ?? defaults.priorityClassName,
    serviceAccountName: s.serviceAccountName ?? defaults.serviceAccountName,
    nodeSelector: mergeMap(defaults.nodeSelector, s.nodeSelector),
    tolerations: concat(defaults.tolerations, s.tolerations),
    podLabels: mergeMap(defaults.podLabels, s.podLabels),
    podAnnotations: mergeMap(defaults.podAnnotations, s.podAnnotations),
    livyConf: mergeMap(defaults.livyConf, s.livyConf),
  });
}

/**
 * The body of a Livy session's POST with the built-in Spark conf (SESSION_CONF_DEFAULTS) under its own
 * conf, which already holds --default-session-conf, spec.session.conf and Kubernetes mode's derived keys:
 * the lowest precedence. Applied to the POST only, never to the digest the Livy session's name carries
 * (decide.ts), so that an operator upgrade with other built-in defaults does not replace running sessions;
 * the next Livy session gets them.
 */
export function withBuiltInSessionConf<T extends { conf?: SessionConf | undefined }>(body: T): T {
  return { ...body, conf: { ...SESSION_CONF_DEFAULTS, ...body.conf } };
}

/** A LivySession's spec.session with the operator's default Spark conf under its own conf. */
export function withSessionDefaults(
  defaultConf: SessionConf | undefined,
  own: SessionSpec | undefined,
): SessionSpec | undefined {
  if (defaultConf === undefined || Object.keys(defaultConf).length === 0) return own;
  return { ...own, conf: { ...defaultConf, ...own?.conf } };
}
