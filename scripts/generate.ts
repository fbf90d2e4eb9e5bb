import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import {
  CHART_CRD_TEMPLATE,
  CRD_FILE,
  livySessionCrdHelmTemplate,
  livySessionCrdYaml,
} from "../src/api/crd.ts";
import {
  livySessionPoolCrdHelmTemplate,
  livySessionPoolCrdYaml,
  POOL_CHART_CRD_TEMPLATE,
  POOL_CRD_FILE,
} from "../src/api/crd-pool.ts";
import { argoCdHealthLua, fluxHealthCheckExprs } from "../src/api/health.ts";

/**
 * Writes the generated manifests: the LivySession CRD into crds/ and into the Helm chart as a template
 * (charts/livy-operator/templates/crd-livysessions.yaml, rendered with crds.enabled, so that helm upgrade
 * upgrades it; Helm never upgrades what a chart's crds/ directory holds), and the health
 * checks for Argo CD and Flux into deploy/health/ (src/api/health.ts).
 * `--check` writes nothing and exits 1 naming each stale file, for CI and the unit test.
 */
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const GENERATED_FILES = [join("crds", CRD_FILE)];
export const CHART_CRD_FILE = join("charts", "livy-operator", "templates", CHART_CRD_TEMPLATE);
/** The LivySessionPool CRD: in crds/ and in the chart as a template, as LivySession's. */
export const POOL_GENERATED_FILES = [join("crds", POOL_CRD_FILE)];
export const POOL_CHART_CRD_FILE = join("charts", "livy-operator", "templates", POOL_CHART_CRD_TEMPLATE);
export const HEALTH_FILES = {
  [join("deploy", "health", "argocd-livysession-health.lua")]: () => argoCdHealthLua(),
  [join("deploy", "health", "flux-healthcheckexprs.yaml")]: () =>
    `# Flux (>= 2.5) Kustomization spec.healthCheckExprs entry for LivySessions, generated from\n# src/api/health.ts: do not edit. Idle LivySessions are Current (healthy); see docs/api.md#health.\n${stringify([fluxHealthCheckExprs()], { lineWidth: 0 })}`,
};

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

function main(): number {
  const check = process.argv.includes("--check");
  const yaml = livySessionCrdYaml();
  const wanted: Record<string, string> = Object.fromEntries([
    ...GENERATED_FILES.map((f) => [f, yaml]),
    [CHART_CRD_FILE, livySessionCrdHelmTemplate()],
    ...POOL_GENERATED_FILES.map((f) => [f, livySessionPoolCrdYaml()]),
    [POOL_CHART_CRD_FILE, livySessionPoolCrdHelmTemplate()],
    ...Object.entries(HEALTH_FILES).map(([f, make]) => [f, make()]),
  ]);
  const stale = Object.keys(wanted).filter((f) => read(join(root, f)) !== wanted[f]);
  if (check) {
    for (const f of stale) process.stderr.write(`stale: ${f} (run: npm run generate)\n`);
    return stale.length === 0 ? 0 : 1;
  }
  for (const f of stale) {
    mkdirSync(dirname(join(root, f)), { recursive: true });
    writeFileSync(join(root, f), wanted[f] ?? "");
    process.stdout.write(`wrote ${relative(process.cwd(), join(root, f)) || f}\n`);
  }
  return 0;
}

process.exitCode = main();
