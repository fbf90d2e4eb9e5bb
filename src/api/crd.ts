import { stringify } from "yaml";
import { z } from "zod";
import {
  API_VERSION,
  CATEGORIES,
  GROUP,
  KIND,
  LIST_KIND,
  livySessionSchema,
  PLURAL,
  SHORT_NAMES,
  SINGULAR,
  VERSION,
} from "./livysession.ts";

/**
 * The CustomResourceDefinition of LivySession, derived from the zod schema (the single source): zod's
 * OpenAPI 3.0 JSON Schema, with the k8s-only keywords the schema carries in `.meta()`, rewritten into the
 * structural schema the API server requires. Pure: `scripts/generate.ts` writes it to crds/ and the chart.
 */

type Json = Record<string, unknown>;

export const CRD_NAME = `${PLURAL}.${GROUP}`;
export const CRD_FILE = `${GROUP}_${PLURAL}.yaml`;

const INT_OR_STRING = "x-kubernetes-int-or-string";

/** Keywords a structural schema may carry; anything else from zod means the converter needs a decision. */
const ALLOWED = new Set([
  "type",
  "description",
  "format",
  "enum",
  "default",
  "pattern",
  "minLength",
  "maxLength",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "minItems",
  "maxItems",
  "uniqueItems",
  "minProperties",
  "maxProperties",
  "properties",
  "required",
  "items",
  "additionalProperties",
  "anyOf",
  "x-kubernetes-validations",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
  INT_OR_STRING,
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-embedded-resource",
]);

/** Key order in the YAML: what a reader looks for first. */
const ORDER = [...ALLOWED];

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** An integer-or-string union becomes the one anyOf form a structural schema allows, its checks hoisted. */
function intOrString(node: Json, path: string): Json {
  const branches = node.anyOf;
  if (!Array.isArray(branches) || branches.length !== 2) {
    throw new Error(`${path}: ${INT_OR_STRING} needs a union of an integer and a string`);
  }
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) if (k !== "anyOf") out[k] = v;
  for (const b of branches as Json[]) {
    if (b.type === "integer") {
      // The largest safe integer is zod's default bound, not a constraint anyone wrote.
      if (b.minimum !== undefined) out.minimum = b.minimum;
      if (b.maximum !== undefined && b.maximum !== Number.MAX_SAFE_INTEGER) out.maximum = b.maximum;
    } else if (b.type === "string") {
      for (const k of ["pattern", "minLength", "maxLength"]) if (b[k] !== undefined) out[k] = b[k];
    } else {
      throw new Error(`${path}: ${INT_OR_STRING} branch of type ${String(b.type)}`);
    }
  }
  out.anyOf = [{ type: "integer" }, { type: "string" }];
  return out;
}

/** Rewrites one node (recursively) into structural form and checks the rules zod could break. */
export function structural(input: Json, path = ""): Json {
  let node = input;
  if (node[INT_OR_STRING] === true) node = intOrString(node, path);
  else if ("anyOf" in node || "oneOf" in node || "allOf" in node || "not" in node) {
    throw new Error(`${path || "(root)"}: unions are not structural; mark int-or-string or restructure`);
  }
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "$schema") continue;
    if (k === "nullable") {
      // parseLivySession() drops every null as the server does for non-nullable fields; a nullable field
      // would keep its null on the server and need that pruning to know about it.
      throw new Error(`${path || "(root)"}: nullable fields are not supported (see pruneNulls)`);
    }
    if (k === "additionalProperties" && (v === false || (isObject(v) && Object.keys(v).length === 0))) {
      // Unknown fields are pruned by the server, as zod's default object mode strips them.
      continue;
    }
    if (!ALLOWED.has(k)) throw new Error(`${path || "(root)"}: keyword ${k} has no place in a CRD schema`);
    if (k === "properties" && isObject(v)) {
      const props: Json = {};
      for (const [name, sub] of Object.entries(v)) props[name] = structural(sub as Json, `${path}.${name}`);
      out[k] = props;
    } else if ((k === "items" || k === "additionalProperties") && isObject(v)) {
      out[k] = structural(v, `${path}${k === "items" ? "[*]" : ".*"}`);
    } else {
      out[k] = v;
    }
  }
  if (
    out.type === undefined &&
    out[INT_OR_STRING] !== true &&
    out["x-kubernetes-preserve-unknown-fields"] !== true
  ) {
    throw new Error(`${path || "(root)"}: no type`);
  }
  if (out.properties !== undefined && out.additionalProperties !== undefined) {
    throw new Error(`${path}: properties and additionalProperties together`);
  }
  return sortKeys(out);
}

function sortKeys(node: Json): Json {
  const out: Json = {};
  for (const k of [...Object.keys(node)].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b)))
    out[k] = node[k];
  return out;
}

/** The openAPIV3Schema of the LivySession CRD. */
/**
 * A resource's OpenAPI schema from its zod schema (LivySession's here, LivySessionPool's in crd-pool.ts):
 * zod's OpenAPI 3.0 JSON Schema with the API server's own fields and the descriptions, made structural.
 */
export function resourceOpenApiSchema(
  schema: z.ZodType,
  o: { kind: string; description: string; specDescription: string },
): Json {
  const js = z.toJSONSchema(schema, {
    target: "openapi-3.0",
    io: "input",
    unrepresentable: "throw",
    reused: "inline",
    cycles: "throw",
  }) as Json;
  const props = { ...(js.properties as Json) };
  // The API server owns these: apiVersion and kind route the request, metadata is ObjectMeta.
  props.apiVersion = { type: "string", description: `${API_VERSION}` };
  props.kind = { type: "string", description: o.kind };
  // The root CEL rules check metadata.name; naming it here (no restriction beyond the API server's own 253)
  // lets their fieldPath point at it, so the refusal names metadata.name.
  props.metadata = { type: "object", properties: { name: { type: "string", maxLength: 253 } } };
  const root: Json = { ...js, properties: props };
  delete root.required;
  root.description = o.description;
  const spec = props.spec as Json;
  spec.description = o.specDescription;
  const status = props.status as Json;
  status.description = "What the operator observed; written through the status subresource.";
  return structural(root);
}

export function openApiSchema(): Json {
  return resourceOpenApiSchema(livySessionSchema, {
    kind: KIND,
    description:
      "An interactive Spark session served by Apache Livy, deployed lazily when demanded and torn down when idle.",
    specDescription: "What the session should be; the operator fills in the rest from its configuration.",
  });
}

export const PRINTER_COLUMNS = [
  { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Summary of the conditions" },
  {
    name: "Ready",
    type: "string",
    jsonPath: '.status.conditions[?(@.type=="Ready")].status',
    description: "Ready condition",
  },
  {
    name: "Reason",
    type: "string",
    jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
    description:
      "Why Ready is what it is: Ready, Starting, IdleTimeout (a healthy idle session), Suspended, or a failure",
  },
  { name: "State", type: "string", jsonPath: ".status.livySessionState", description: "Livy session state" },
  { name: "Endpoint", type: "string", jsonPath: ".status.sessionURL", description: "Livy session URL" },
  { name: "Kind", type: "string", jsonPath: ".spec.kind", priority: 1, description: "Livy session kind" },
  {
    name: "Restarts",
    type: "integer",
    jsonPath: ".status.restarts",
    priority: 1,
    description: "Restarts (Recover)",
  },
  {
    name: "Last-Activity",
    type: "date",
    jsonPath: ".status.lastActivityTime",
    priority: 1,
    description: "Latest statement activity",
  },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  {
    name: "Message",
    type: "string",
    jsonPath: ".status.message",
    priority: 1,
    description: "Status message",
  },
];

/** An apiextensions.k8s.io/v1 CustomResourceDefinition of this project's group: one version, status subresource. */
export function crdOf(o: {
  name: string;
  names: { kind: string; listKind: string; plural: string; singular: string; shortNames: readonly string[] };
  printerColumns: unknown[];
  schema: Json;
}): Json {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: o.name,
      labels: { "app.kubernetes.io/name": "livy-operator", "app.kubernetes.io/part-of": "livy-operator" },
    },
    spec: {
      group: GROUP,
      names: { ...o.names, shortNames: [...o.names.shortNames], categories: [...CATEGORIES] },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: o.printerColumns,
          schema: { openAPIV3Schema: o.schema },
        },
      ],
    },
  };
}

/** The apiextensions.k8s.io/v1 CustomResourceDefinition object. */
export function livySessionCrd(): Json {
  return crdOf({
    name: CRD_NAME,
    names: { kind: KIND, listKind: LIST_KIND, plural: PLURAL, singular: SINGULAR, shortNames: SHORT_NAMES },
    printerColumns: PRINTER_COLUMNS,
    schema: openApiSchema(),
  });
}

export const CRD_HEADER = "# Generated by `npm run generate` from src/api/livysession.ts. Do not edit.\n";

/** The CRD as the YAML file committed under crds/. */
export function livySessionCrdYaml(): string {
  return CRD_HEADER + stringify(livySessionCrd(), { lineWidth: 0, aliasDuplicateObjects: false });
}

/** Where the chart keeps the CRD: a template (not the chart's crds/ directory, which Helm never upgrades). */
export const CHART_CRD_TEMPLATE = "crd-livysessions.yaml";

/**
 * The CRD as a template of the Helm chart, rendered only with `crds.enabled` and annotated
 * `helm.sh/resource-policy: keep` with `crds.keep` (cert-manager's scheme): Helm then creates it on install
 * and upgrades it on `helm upgrade`, and `helm uninstall` leaves it, and every LivySession, in place. The
 * spec is the same as crds/'s, verbatim; only the metadata is templated (the chart's labels).
 */
export function livySessionCrdHelmTemplate(): string {
  const crd = livySessionCrd();
  const spec = stringify({ spec: crd.spec }, { lineWidth: 0, aliasDuplicateObjects: false });
  // The spec goes into a Go template verbatim: a "{{" in it (in a CEL message, say) would be a template action.
  if (spec.includes("{{") || spec.includes("}}"))
    throw new Error("the CRD spec contains {{ or }}: escape it for the chart template");
  return [
    "{{- /* Generated by `npm run generate` from src/api/livysession.ts. Do not edit. */ -}}",
    "{{- if .Values.crds.enabled }}",
    `apiVersion: ${String(crd.apiVersion)}`,
    `kind: ${String(crd.kind)}`,
    "metadata:",
    `  name: ${CRD_NAME}`,
    "  labels:",
    '    {{- include "livy-operator.crdLabels" . | nindent 4 }}',
    "  {{- if .Values.crds.keep }}",
    "  annotations:",
    "    helm.sh/resource-policy: keep",
    "  {{- end }}",
    `${spec.trimEnd()}`,
    "{{- end }}",
    "",
  ].join("\n");
}
