/**
 * The CustomResourceDefinition of LivySessionPool, derived from its zod schema (src/api/livysessionpool.ts)
 * the way crd.ts derives LivySession's: the same structural rewrite, its own names and columns.
 */
import { stringify } from "yaml";
import { CRD_HEADER, crdOf, resourceOpenApiSchema } from "./crd.ts";
import { GROUP } from "./livysession.ts";
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
  return resourceOpenApiSchema(livySessionPoolSchema, {
    kind: POOL_KIND,
    description:
      "A warm pool of pre-started Livy servers, each with an open, warmed Spark session, handed at once to a LivySession of the same namespace whose spec matches the pool's, and refilled behind it.",
    specDescription:
      "How many servers to keep free, within what budget, and the template (kind, server, session, warmup, auth) a LivySession must match.",
  });
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
  return crdOf({
    name: POOL_CRD_NAME,
    names: {
      kind: POOL_KIND,
      listKind: POOL_LIST_KIND,
      plural: POOL_PLURAL,
      singular: POOL_SINGULAR,
      shortNames: POOL_SHORT_NAMES,
    },
    printerColumns: POOL_PRINTER_COLUMNS,
    schema: poolOpenApiSchema(),
  });
}

export function livySessionPoolCrdYaml(): string {
  return (
    CRD_HEADER.replace("src/api/livysession.ts", "src/api/livysessionpool.ts") +
    stringify(livySessionPoolCrd(), { lineWidth: 0, aliasDuplicateObjects: false })
  );
}
