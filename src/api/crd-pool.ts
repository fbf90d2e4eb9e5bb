/**
 * The CustomResourceDefinition of LivySessionPool, derived from its zod schema (src/api/livysessionpool.ts)
 * the way crd.ts derives LivySession's: the same structural rewrite, its own names and columns.
 */
import { stringify } from "yaml";
import { z } from "zod";
import { CRD_HEADER, structural } from "./crd.ts";
import { API_VERSION, CATEGORIES, GROUP, VERSION } from "./livysession.ts";
import {
  livySessionPoolSchema,
  POOL_KIND,
  POOL_LIST_KIND,
  POOL_PLURAL,
  POOL_SHORT_NAMES,
  POOL_SINGULAR,
} from "./livysessionpool.ts";

type Json = Record<string, unknown>;

export const POOL_CRD_NAME = `${POOL_PLURAL}.${GROUP}`;
export const POOL_CRD_FILE = `${GROUP}_${POOL_PLURAL}.yaml`;

export function poolOpenApiSchema(): Json {
  const js = z.toJSONSchema(livySessionPoolSchema, {
    target: "openapi-3.0",
    io: "input",
    unrepresentable: "throw",
    reused: "inline",
    cycles: "throw",
  }) as Json;
  const props = { ...(js.properties as Json) };
  props.apiVersion = { type: "string", description: `${API_VERSION}` };
  props.kind = { type: "string", description: POOL_KIND };
  props.metadata = { type: "object", properties: { name: { type: "string", maxLength: 253 } } };
  const root: Json = { ...js, properties: props };
  delete root.required;
  root.description =
    "A warm pool of pre-started Livy servers, each with an open, warmed Spark session, handed at once to a LivySession of the same namespace whose spec matches the pool's, and refilled behind it.";
  (props.spec as Json).description =
    "How many servers to keep free, within what budget, and the template (kind, server, session, warmup, auth) a LivySession must match.";
  (props.status as Json).description = "What the operator observed; written through the status subresource.";
  return structural(root);
}

export const POOL_PRINTER_COLUMNS = [
  { name: "Kind", type: "string", jsonPath: ".spec.kind", description: "Livy session kind" },
  { name: "Size", type: "integer", jsonPath: ".spec.size", description: "Free servers wanted" },
  { name: "Target", type: "integer", jsonPath: ".status.target", description: "min(size, budget)" },
  { name: "Warm", type: "integer", jsonPath: ".status.warm", description: "Free servers ready to hand over" },
  { name: "Free", type: "integer", jsonPath: ".status.free", description: "Free servers, warm or starting" },
  {
    name: "Handed-Over",
    type: "integer",
    jsonPath: ".status.handedOver",
    priority: 1,
    description: "Servers handed to LivySessions",
  },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

export function livySessionPoolCrd(): Json {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: POOL_CRD_NAME,
      labels: { "app.kubernetes.io/name": "livy-operator", "app.kubernetes.io/part-of": "livy-operator" },
    },
    spec: {
      group: GROUP,
      names: {
        kind: POOL_KIND,
        listKind: POOL_LIST_KIND,
        plural: POOL_PLURAL,
        singular: POOL_SINGULAR,
        shortNames: [...POOL_SHORT_NAMES],
        categories: [...CATEGORIES],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: POOL_PRINTER_COLUMNS,
          schema: { openAPIV3Schema: poolOpenApiSchema() },
        },
      ],
    },
  };
}

export function livySessionPoolCrdYaml(): string {
  return (
    CRD_HEADER.replace("src/api/livysession.ts", "src/api/livysessionpool.ts") +
    stringify(livySessionPoolCrd(), { lineWidth: 0, aliasDuplicateObjects: false })
  );
}
