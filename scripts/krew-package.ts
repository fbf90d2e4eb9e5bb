#!/usr/bin/env node
/**
 * The krew release of kubectl livy: an archive with the built package, its production dependencies and
 * the kubectl-livy / kubectl_complete-livy launchers, and the plugin manifest for it.
 *   node scripts/krew-package.ts --version v0.1.0 --url-base https://github.com/livy-operator/livy-operator/releases/download/v0.1.0 [--out dist/krew]
 * Writes <out>/kubectl-livy-<version>.tar.gz and <out>/livy.yaml (deploy/krew/livy.template.yaml filled in).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = join(fileURLToPath(import.meta.url), "..", "..");
const { values } = parseArgs({
  options: {
    version: { type: "string" },
    "url-base": { type: "string" },
    out: { type: "string", default: join(root, "dist", "krew") },
  },
});
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
const version = values.version ?? `v${pkg.version}`;
const urlBase =
  values["url-base"] ?? `https://github.com/livy-operator/livy-operator/releases/download/${version}`;
const out = resolve(values.out ?? "");
const archive = `kubectl-livy-${version}.tar.gz`;

// The launchers: krew links bin into $KREW_ROOT/bin, so they find their directory through the link.
const launcher = (entry: string) => `#!/bin/sh
# kubectl livy (livy-operator): runs ${entry} on the Node.js on the PATH.
self=$(readlink -f "$0" 2>/dev/null || realpath "$0")
dir=$(dirname "$self")
exec node "$dir/dist/cli/${entry}" "$@"
`;

execFileSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
const stage = mkdtempSync(join(tmpdir(), "krew-"));
try {
  const top = join(stage, "kubectl-livy");
  mkdirSync(top);
  for (const f of ["package.json", "package-lock.json", "LICENSE", "README.md"]) {
    try {
      cpSync(join(root, f), join(top, f));
    } catch {
      // LICENSE may be absent in a checkout; the package says Apache-2.0
    }
  }
  cpSync(join(root, "dist"), join(top, "dist"), {
    recursive: true,
    filter: (src) => !src.includes(`${join(root, "dist", "krew")}`),
  });
  // --no-bin-links: krew's unpacker refuses symbolic links in the archive ("unable to handle file type 50"),
  // and node_modules/.bin holds nothing but links
  execFileSync("npm", ["ci", "--omit=dev", "--ignore-scripts", "--no-bin-links", "--no-audit", "--no-fund"], {
    cwd: top,
    stdio: "inherit",
  });
  for (const [name, entry] of [
    ["kubectl-livy", "kubectl-livy.js"],
    ["kubectl_complete-livy", "kubectl-complete-livy.js"],
  ] as const) {
    writeFileSync(join(top, name), launcher(entry));
    chmodSync(join(top, name), 0o755);
  }
  mkdirSync(out, { recursive: true });
  // sorted entries, fixed owner and mtime: the same inputs give the same archive
  execFileSync("tar", [
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--mtime=@0",
    "-C",
    stage,
    "-cf",
    join(out, "kubectl-livy.tar"),
    "kubectl-livy",
  ]);
  execFileSync("sh", ["-c", `gzip -n -9 < "${join(out, "kubectl-livy.tar")}" > "${join(out, archive)}"`]);
  rmSync(join(out, "kubectl-livy.tar"));
  const sha256 = createHash("sha256")
    .update(readFileSync(join(out, archive)))
    .digest("hex");
  const manifest = readFileSync(join(root, "deploy", "krew", "livy.template.yaml"), "utf8")
    .replaceAll("{{VERSION}}", version)
    .replaceAll("{{URI}}", `${urlBase}/${archive}`)
    .replaceAll("{{SHA256}}", sha256);
  writeFileSync(join(out, "livy.yaml"), manifest);
  process.stdout.write(
    `${JSON.stringify({ archive: join(out, archive), manifest: join(out, "livy.yaml"), sha256 })}\n`,
  );
} finally {
  rmSync(stage, { recursive: true, force: true });
}
