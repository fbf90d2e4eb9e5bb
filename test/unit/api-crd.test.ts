import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  CHART_CRD_TEMPLATE,
  CRD_FILE,
  livySessionCrd,
  livySessionCrdHelmTemplate,
  livySessionCrdYaml,
  openApiSchema,
  structural,
} from "../../src/api/crd.ts";

type Json = Record<string, unknown>;
const ROOT = join(import.meta.dirname, "..", "..");

/** Every schema node with its path. */
function walk(node: Json, path: string, visit: (n: Json, p: string) => void): void {
  visit(node, path);
  for (const [name, sub] of Object.entries((node.properties ?? {}) as Record<string, Json>)) {
    walk(sub, `${path}.${name}`, visit);
  }
  if (node.items) walk(node.items as Json, `${path}[*]`, visit);
  if (typeof node.additionalProperties === "object")
    walk(node.additionalProperties as Json, `${path}.*`, visit);
}

describe("generated CRD files", () => {
  it("crds/ is up to date (run `npm run generate`)", () => {
    expect(readFileSync(join(ROOT, "crds", CRD_FILE), "utf8")).toBe(livySessionCrdYaml());
  });

  it("the chart's CRD template is up to date, and holds the same spec verbatim", () => {
    const file = join(ROOT, "charts", "livy-operator", "templates", CHART_CRD_TEMPLATE);
    const text = readFileSync(file, "utf8");
    expect(text).toBe(livySessionCrdHelmTemplate());
    // the spec, from "spec:" to the closing action, is plain YAML (helm renders it in test/integration/chart)
    const spec = text.slice(text.indexOf("\nspec:\n") + 1, text.lastIndexOf("{{- end }}"));
    expect(parse(spec)).toEqual({ spec: livySessionCrd().spec });
    expect(text).toMatch(/^\{\{- if \.Values\.crds\.enabled \}\}$/m);
  });

  // a Node start plus the generator: seconds, but over 20 s at load 55-75 (seen); the timeout bounds a hang
  it("`generate --check` agrees", () => {
    // on failure, say why: what the generator printed (a stale file's name) or how the process ended
    let failure = "";
    try {
      execFileSync(process.execPath, [join(ROOT, "scripts", "generate.ts"), "--check"], { stdio: "pipe" });
    } catch (err) {
      const e = err as { status?: number | null; signal?: string | null; stdout?: Buffer; stderr?: Buffer };
      failure = `exit ${e.status} signal ${e.signal}\n${e.stdout?.toString() ?? ""}${e.stderr?.toString() ?? String(err)}`;
    }
    expect(failure).toBe("");
  }, 180_000);

  it("carries no empty rule list (the API server drops it: the CRD served would differ from the file)", () => {
    const spec = livySessionCrd() as { spec: { versions: Array<{ schema: { openAPIV3Schema: Json } }> } };
    const empty: string[] = [];
    walk(spec.spec.versions[0]?.schema.openAPIV3Schema ?? {}, "", (n, p) => {
      const rules = n["x-kubernetes-validations"];
      if (Array.isArray(rules) && rules.length === 0) empty.push(p);
    });
    expect(empty).toEqual([]);
  });

  it("the YAML parses back to the CRD object", () => {
    expect(parse(livySessionCrdYaml())).toEqual(livySessionCrd());
  });
});

describe("CRD schema is structural and budgeted", () => {
  const schema = openApiSchema();

  it("has a type on every node (or is int-or-string), and no properties next to additionalProperties", () => {
    walk(schema, "", (n, p) => {
      if (n["x-kubernetes-int-or-string"] === true) {
        expect(n.anyOf, p).toEqual([{ type: "integer" }, { type: "string" }]);
      } else {
        expect(n.type, p).toBeTypeOf("string");
        expect(n.anyOf, p).toBeUndefined();
      }
      expect(n.properties !== undefined && n.additionalProperties !== undefined, p).toBe(false);
      expect(n.additionalProperties, p).not.toBe(false);
      expect(n.nullable, p).toBeUndefined();
      expect(n.$schema, p).toBeUndefined();
    });
  });

  it("bounds every string, list and map (the CEL cost estimator needs it)", () => {
    walk(schema, "", (n, p) => {
      if (p === ".apiVersion" || p === ".kind" || n.enum) return;
      if (n.type === "string") expect(n.maxLength, p).toBeTypeOf("number");
      if (n.type === "array") expect(n.maxItems, p).toBeTypeOf("number");
      if (n.type === "object" && n.additionalProperties) expect(n.maxProperties, p).toBeTypeOf("number");
    });
  });

  it("gives every CEL rule a message", () => {
    let rules = 0;
    walk(schema, "", (n, p) => {
      for (const r of (n["x-kubernetes-validations"] ?? []) as Json[]) {
        rules++;
        expect(typeof r.message === "string" || typeof r.messageExpression === "string", p).toBe(true);
      }
    });
    expect(rules).toBeGreaterThanOrEqual(15);
  });

  it("carries the defaults", () => {
    const spec = (schema.properties as Record<string, Json>).spec as Json;
    const props = spec.properties as Record<string, Json>;
    expect(spec.default).toEqual({});
    expect(
      Object.fromEntries(
        Object.entries(props)
          .map(([k, v]) => [k, v.default])
          .filter(([, d]) => d !== undefined),
      ),
    ).toEqual({
      kind: "pyspark",
      suspend: false,
      idleTimeout: "15m",
      startupTimeout: "5m",
      failurePolicy: "FailFast",
    });
  });

  it("keys conditions by type and env by name", () => {
    const status = (schema.properties as Record<string, Json>).status as Json;
    const conditions = (status.properties as Record<string, Json>).conditions as Json;
    expect(conditions["x-kubernetes-list-type"]).toBe("map");
    expect(conditions["x-kubernetes-list-map-keys"]).toEqual(["type"]);
  });

  it("has the status subresource, printer columns and names", () => {
    const crd = livySessionCrd() as { spec: Json };
    const version = (crd.spec.versions as Json[])[0] as Json;
    expect(version.subresources).toEqual({ status: {} });
    const columns = version.additionalPrinterColumns as Json[];
    expect(columns.filter((c) => !c.priority).map((c) => c.name)).toEqual([
      "Phase",
      "Ready",
      "Reason",
      "State",
      "Endpoint",
      "Age",
    ]);
    expect(columns.filter((c) => c.priority === 1).map((c) => c.name)).toEqual([
      "Kind",
      "Restarts",
      "Last-Activity",
      "Message",
    ]);
    expect(crd.spec.names).toMatchObject({
      kind: "LivySession",
      plural: "livysessions",
      shortNames: ["lvs"],
    });
  });
});

describe("structural()", () => {
  it("refuses unions other than int-or-string", () => {
    expect(() => structural({ anyOf: [{ type: "string" }, { type: "boolean" }] }, ".x")).toThrow(
      /unions are not structural/,
    );
  });
  it("refuses nodes without a type", () => {
    expect(() => structural({ description: "?" }, ".x")).toThrow(/no type/);
  });
  it("refuses nullable fields, which parseLivySession's null pruning does not model", () => {
    expect(() => structural({ type: "string", nullable: true }, ".x")).toThrow(/nullable/);
  });
  it("refuses keywords a CRD cannot carry", () => {
    expect(() => structural({ type: "string", format: "email", const: "a" }, ".x")).toThrow(/keyword const/);
  });
  it("hoists int-or-string checks out of the branches", () => {
    expect(
      structural({
        "x-kubernetes-int-or-string": true,
        anyOf: [
          { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
          { type: "string", pattern: "^a$", maxLength: 3 },
        ],
      }),
    ).toEqual({
      minimum: 0,
      pattern: "^a$",
      maxLength: 3,
      anyOf: [{ type: "integer" }, { type: "string" }],
      "x-kubernetes-int-or-string": true,
    });
  });
});
