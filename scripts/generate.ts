import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { CRD_FILE, livySessionCrdYaml } from "../src/api/crd.ts";

/**
 * Writes the generated manifests: the LivySession CRD into crds/ and into the Helm chart (Helm installs
 * charts/<chart>/crds/ before the templates and never templates it, so it is a plain copy).
 * `--check` writes nothing and exits 1 naming each stale file, for CI and the unit test.
 */
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const GENERATED_FILES = [join("crds", CRD_FILE), join("charts", "livy-operator", "crds", CRD_FILE)];

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
  const stale = GENERATED_FILES.filter((f) => read(join(root, f)) !== yaml);
  if (check) {
    for (const f of stale) process.stderr.write(`stale: ${f} (run: npm run generate)\n`);
    return stale.length === 0 ? 0 : 1;
  }
  for (const f of stale) {
    writeFileSync(join(root, f), yaml);
    process.stdout.write(`wrote ${relative(process.cwd(), join(root, f)) || f}\n`);
  }
  return 0;
}

process.exitCode = main();
