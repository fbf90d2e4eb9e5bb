/**
 * LivySessionPool (`livy.dev/v1alpha1`): a warm pool of pre-started Livy servers per namespace, each with an
 * open, warmed Spark session, handed to a LivySession whose spec matches the pool's template at once and
 * refilled behind it (issue 14, item 5). The schema is the single source of its CRD and parser, as for
 * LivySession; the decisions are src/operator/pool.ts.
 */
import type { V1ObjectMeta } from "@kubernetes/client-node";
import { z } from "zod";
import {
  API_VERSION,
  authSchema,
  formatIssues,
  pruneNulls,
  SESSION_KINDS,
  serverSchema,
  sessionSchema,
  warmupSchema,
} from "./livysession.ts";
import {
  annotate,
  celEscape,
  codePoints,
  DNS1123_LABEL,
  int,
  map,
  qualifiedNameKey,
  quantity,
  withRules,
} from "./schema-kit.ts";

export const POOL_KIND = "LivySessionPool";
export const POOL_LIST_KIND = "LivySessionPoolList";
export const POOL_PLURAL = "livysessionpools";
export const POOL_SINGULAR = "livysessionpool";
export const POOL_SHORT_NAMES = ["lvsp"] as const;

/** livy-<pool>-p<suffix of up to 11> must fit a Service name (63). */
export const POOL_NAME_MAX = 44;
/** Servers one pool keeps free at most. */
export const POOL_SIZE_MAX = 100;

const describe = <S extends z.ZodType>(schema: S, description: string): S =>
  annotate(schema, { description });

export const budgetSchema = describe(
  z.object({
    requests: map(quantity(), {
      maxProperties: 16,
      keys: [qualifiedNameKey("budget.requests keys")],
      description:
        "The most the pool's free (not handed over) servers may request together, per resource name (cpu, memory, ...), as Kubernetes quantities.",
    }).optional(),
  }),
  "What idle pooled servers may hold: the pool keeps min(size, what fits the budget) free servers.",
);

export const poolSpecSchema = z.object({
  size: int({
    min: 0,
    max: POOL_SIZE_MAX,
    description: `Free warm servers to keep (0..${POOL_SIZE_MAX}); each hand-over starts a new one behind it.`,
  }).default(1),
  kind: z.enum(SESSION_KINDS).default("pyspark").meta({
    description: "Livy session kind of the pooled sessions; a LivySession of another kind is not served.",
  }),
  server: serverSchema.optional(),
  session: sessionSchema.optional(),
  warmup: warmupSchema.optional(),
  auth: authSchema.optional(),
  budget: budgetSchema.optional(),
});

export const poolStatusSchema = z.object({
  observedGeneration: int({
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    description: "The metadata.generation this status was computed from.",
  }).optional(),
  free: int({
    min: 0,
    max: 10_000,
    description: "Servers neither handed over nor being removed.",
  }).optional(),
  warm: int({
    min: 0,
    max: 10_000,
    description: "Free servers whose Livy session is warm: ready to hand over.",
  }).optional(),
  target: int({
    min: 0,
    max: 10_000,
    description: "Free servers the pool aims at: min(spec.size, what fits spec.budget).",
  }).optional(),
  budgetLimited: z
    .boolean()
    .optional()
    .meta({ description: "True when spec.budget, not spec.size, sets the target." }),
  handedOver: int({
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    description: "Servers handed to LivySessions since the pool was created.",
  }).optional(),
});

const nameRe = new RegExp(DNS1123_LABEL);

export const livySessionPoolSchema = withRules(
  z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(POOL_KIND),
    metadata: z.object({ name: z.string() }).loose(),
    spec: poolSpecSchema.prefault({}),
    status: poolStatusSchema.optional(),
  }),
  [
    {
      rule: `self.metadata.name.matches('${celEscape(DNS1123_LABEL)}')`,
      message:
        "metadata.name must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending alphanumeric): it names the pooled servers livy-<name>-p<suffix>",
      fieldPath: ".metadata.name",
      check: (o) => nameRe.test(o.metadata.name),
    },
    {
      rule: `size(self.metadata.name) <= ${POOL_NAME_MAX}`,
      message: `metadata.name must be at most ${POOL_NAME_MAX} characters: the pooled servers' Services livy-<name>-p<suffix> must fit in 63`,
      fieldPath: ".metadata.name",
      check: (o) => codePoints(o.metadata.name) <= POOL_NAME_MAX,
    },
  ],
);

export type LivySessionPoolSpec = z.output<typeof poolSpecSchema>;
export type LivySessionPoolStatus = z.output<typeof poolStatusSchema>;

export interface LivySessionPool {
  apiVersion: typeof API_VERSION;
  kind: typeof POOL_KIND;
  metadata: V1ObjectMeta & { name: string };
  spec: LivySessionPoolSpec;
  status?: LivySessionPoolStatus;
}

export type PoolParseResult =
  | { success: true; data: LivySessionPool }
  | { success: false; error: z.ZodError; message: string };

/** As parseLivySession: what the API server admits with the generated CRD, errors naming the field. */
export function parseLivySessionPool(obj: unknown): PoolParseResult {
  const r = livySessionPoolSchema.safeParse(pruneNulls(obj));
  if (r.success) return { success: true, data: r.data as LivySessionPool };
  return { success: false, error: r.error, message: formatIssues(r.error) };
}
