import { z } from "zod";

/**
 * Building blocks for zod schemas that are also the source of a Kubernetes structural schema. Each helper
 * states a constraint twice, once for the API server (OpenAPI keywords and CEL rules, carried in `.meta()`)
 * and once for zod (checks and refinements), side by side, so the two cannot drift apart: the property test
 * in test/integration/crd-property.test.ts holds them to the same accept/refuse decisions.
 *
 * Two semantic details the API server imposes, mirrored here:
 * - `maxLength` and CEL `size()` count Unicode code points, not UTF-16 units, so string lengths are checked
 *   with `codePoints()` rather than zod's `.max()`.
 * - Regular expressions run in Go's RE2 on the server: patterns here use only syntax that means the same in
 *   RE2 and JavaScript (no `\s`, `\w` classes with Unicode meaning, lookarounds or backreferences).
 */

export const XV = "x-kubernetes-validations";

/** A CEL validation rule as the apiextensions.k8s.io/v1 schema spells it. */
export interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  /** Relative JSONPath-like path (".a.b") to the field the error should name, from the rule's node. */
  fieldPath?: string;
  reason?: "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired" | "FieldValueDuplicate";
}

/**
 * A CEL rule and its TypeScript twin. `check` is the same predicate over the parsed (defaulted) value;
 * "transition" marks a rule over `oldSelf`, which only the API server can evaluate (zod sees one object).
 */
export interface Rule<T> extends CelRule {
  check: ((value: T) => boolean) | "transition";
}

type Meta = Record<string, unknown>;

/** Adds k8s-only schema keywords to a schema's metadata, appending to any CEL rules it already carries. */
export function annotate<S extends z.ZodType>(schema: S, meta: Meta): S {
  const existing = (z.globalRegistry.get(schema) ?? {}) as Meta;
  const merged: Meta = { ...existing, ...meta };
  const before = existing[XV] as CelRule[] | undefined;
  const added = meta[XV] as CelRule[] | undefined;
  if (before && added) merged[XV] = [...before, ...added];
  return schema.meta(merged) as S;
}

function zodPath(fieldPath: string | undefined): PropertyKey[] | undefined {
  if (!fieldPath) return undefined;
  return fieldPath.split(".").filter((p) => p !== "");
}

/** Attaches CEL rules (for the CRD) and their TypeScript twins (for zod) to one schema node. */
export function withRules<S extends z.ZodType>(schema: S, rules: Rule<z.output<S>>[]): S {
  let s: S = schema;
  for (const r of rules) {
    const check = r.check;
    if (check === "transition") continue;
    const path = zodPath(r.fieldPath);
    s = s.refine((v) => check(v as z.output<S>), {
      message: r.message ?? r.rule,
      ...(path ? { path } : {}),
    }) as S;
  }
  const cel: CelRule[] = rules.map(({ check: _check, ...rule }) => rule);
  // An empty list is dropped by the API server: the CRD as served would differ from the file (and a
  // server-side apply of the file by another manager would conflict on .spec.versions).
  if (cel.length === 0) return s;
  return annotate(s, { [XV]: cel });
}

/** Length in Unicode code points, as the API server's maxLength and CEL's size() count it. */
export function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

export interface StrOptions {
  /** Only 0 or 1: "non-empty" means the same in code points and UTF-16 units. */
  min?: 0 | 1;
  max: number;
  pattern?: string;
  description?: string;
}

/** A string bounded in code points (and optionally patterned); the bound also feeds CEL's cost estimator. */
export function str(opts: StrOptions) {
  let s = z.string();
  if (opts.pattern !== undefined) s = s.regex(new RegExp(opts.pattern));
  if (opts.min === 1) s = s.min(1);
  const max = opts.max;
  const bounded = s.refine((v) => codePoints(v) <= max, { message: `must be at most ${max} characters` });
  return annotate(bounded, {
    maxLength: max,
    // as written, not RegExp.source, which escapes '/'
    ...(opts.pattern !== undefined ? { pattern: opts.pattern } : {}),
    ...(opts.description !== undefined ? { description: opts.description } : {}),
  });
}

export interface IntOptions {
  min: number;
  max: number;
  description?: string;
}

export function int(opts: IntOptions) {
  const s = z.int().min(opts.min).max(opts.max);
  return opts.description !== undefined ? s.meta({ description: opts.description }) : s;
}

/** A predicate over map keys, as CEL (over the variable `k`) and as TypeScript. */
export interface KeyRule {
  cel: string;
  check: (key: string) => boolean;
  message: string;
}

export interface MapOptions {
  maxProperties: number;
  keys?: KeyRule[];
  description?: string;
}

/**
 * A string-keyed map (OpenAPI additionalProperties). Map keys have no schema of their own in a structural
 * schema, so key constraints are CEL rules on the map: `self.all(k, ...)`.
 */
export function map<V extends z.ZodType>(value: V, opts: MapOptions) {
  const max = opts.maxProperties;
  const sized = z
    .record(z.string(), value)
    .refine((m) => Object.keys(m).length <= max, { message: `must have at most ${max} entries` });
  const rules: Rule<Record<string, z.output<V>>>[] = (opts.keys ?? []).map((k) => ({
    rule: `self.all(k, ${k.cel})`,
    message: k.message,
    check: (m) => Object.keys(m).every(k.check),
  }));
  return annotate(withRules(sized, rules), {
    maxProperties: max,
    ...(opts.description !== undefined ? { description: opts.description } : {}),
  });
}

/**
 * A list the API server treats as a map keyed by `keys` (x-kubernetes-list-type: map): server-side apply
 * merges it per key, and duplicate keys are refused, here too.
 */
export function listMap<I extends z.ZodType>(
  item: I,
  keys: string[],
  maxItems: number,
  description?: string,
) {
  const unique = z
    .array(item)
    .max(maxItems)
    .superRefine((items, ctx) => {
      const seen = new Set<string>();
      items.forEach((it, i) => {
        const rec = it as Record<string, unknown>;
        const id = JSON.stringify(keys.map((k) => rec[k]));
        if (seen.has(id)) {
          ctx.addIssue({ code: "custom", message: `duplicate entry for ${keys.join(",")}`, path: [i] });
        }
        seen.add(id);
      });
    });
  return annotate(unique, {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": keys,
    ...(description !== undefined ? { description } : {}),
  });
}

/**
 * The Kubernetes resource.Quantity wire form: an integer or a string such as "500m", "2Gi", "1.5". Negative
 * quantities are refused (they make no sense for requests and limits, and pods refuse them later anyway).
 */
export const QUANTITY_PATTERN =
  "^\\+?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$";

export function quantity(description?: string) {
  const s = z.union([
    z.int().min(0).max(Number.MAX_SAFE_INTEGER),
    str({ max: 64, pattern: QUANTITY_PATTERN }),
  ]);
  return annotate(s, {
    "x-kubernetes-int-or-string": true,
    ...(description !== undefined ? { description } : {}),
  });
}

// Name grammars of Kubernetes (k8s.io/apimachinery/pkg/util/validation), in RE2/JavaScript-neutral syntax.
export const DNS1123_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
export const DNS1123_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
export const LABEL_VALUE = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
/** prefix/name with the name part at most 63 characters; the prefix's 253 limit is QUALIFIED_NAME_LONG_PREFIX. */
export const QUALIFIED_NAME =
  "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
export const QUALIFIED_NAME_LONG_PREFIX = "^[^/]{254,}/";
/** Whitespace as RE2 defines \s (JavaScript's \s also matches Unicode spaces, so it is spelled out). */
export const NO_WHITESPACE = "^[^\\t\\n\\v\\f\\r ]+$";

const qualifiedName = new RegExp(QUALIFIED_NAME);
const longPrefix = new RegExp(QUALIFIED_NAME_LONG_PREFIX);

/** A label or annotation key (a "qualified name"), as CEL over `k` and as TypeScript. */
export function qualifiedNameKey(what: string): KeyRule {
  return {
    cel: `k.matches('${celEscape(QUALIFIED_NAME)}') && !k.matches('${celEscape(QUALIFIED_NAME_LONG_PREFIX)}')`,
    check: (k) => qualifiedName.test(k) && !longPrefix.test(k),
    message: `${what} must be qualified names: an optional DNS subdomain prefix of at most 253 characters and '/', then at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric`,
  };
}

/** Escapes a regular expression for a single-quoted CEL string literal. */
export function celEscape(re: string): string {
  return re.replaceAll("\\", "\\\\").replaceAll("'", "\\'");
}
