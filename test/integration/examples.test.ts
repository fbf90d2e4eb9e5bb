import { readdirSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { REPO_ROOT } from "../testbed/paths.ts";
import { createNamespace, installCrd, kubectl } from "./harness.ts";

/**
 * Every example applied with the real kubectl to the real API server (server-side dry-run: admission,
 * the CRD's structural schema, CEL rules and defaulting all run, nothing is stored). The minimal example is
 * also really applied and reconciled to Ready by the operator, with the chart's RBAC, in chart.test.ts.
 */
describe("examples/", () => {
  const files = readdirSync(join(REPO_ROOT, "examples")).filter((f) => f.endsWith(".yaml"));
  let ns: string;

  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("examples");
  });

  it("has the examples the docs name", () => {
    expect(files.sort()).toEqual(
      [
        "pyspark-kubernetes.yaml",
        "pyspark-minimal.yaml",
        "pyspark-resources-conf.yaml",
        "recover.yaml",
        "scala.yaml",
        "suspended.yaml",
      ].sort(),
    );
  });

  it.each(files)(
    "kubectl apply --dry-run=server -f examples/%s is accepted, with the CRD's defaults",
    async (file) => {
      const out = await kubectl([
        "apply",
        "--dry-run=server",
        "-n",
        ns,
        "-f",
        join(REPO_ROOT, "examples", file),
        "-o",
        "yaml",
      ]);
      const obj = parse(out) as {
        kind: string;
        metadata: { namespace: string };
        spec: {
          kind: string;
          idleTimeout: string;
          startupTimeout: string;
          failurePolicy: string;
          suspend: boolean;
        };
      };
      expect(obj.kind).toBe("LivySession");
      expect(obj.metadata.namespace).toBe(ns);
      // defaulted by the API server where the example leaves them out
      expect(obj.spec.idleTimeout).toMatch(/^\d+[hms]/);
      expect(obj.spec.startupTimeout).toMatch(/^\d+[hms]/);
      expect(["FailFast", "Recover"]).toContain(obj.spec.failurePolicy);
      expect(typeof obj.spec.suspend).toBe("boolean");
    },
  );
});
