#!/usr/bin/env node
/**
 * What installing the package costs a user, before and after the light client package: builds and packs
 * `livy-operator` (the whole package) and `@livy-operator/client` (packages/client), installs each into an
 * empty project with npm (production dependencies, from the registry or npm's cache) and measures
 * node_modules: bytes on disk, files, packages. Prints a JSON object and a Markdown table.
 *   node scripts/measure-install.ts
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(fileURLToPath(import.meta.url), "..", "..");
const work = mkdtempSync(join(tmpdir(), "measure-install-"));
const npm = (args: string[], cwd: string) =>
  execFileSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, encoding: "utf8" });

function du(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) {
      const sub = du(p);
      bytes += sub.bytes;
      files += sub.files;
    } else if (entry.isFile()) {
      bytes += statSync(p).size;
      files++;
    }
  }
  return { bytes, files };
}

function measure(label: string, pkgDir: string, build: string[]) {
  execFileSync("npm", ["run", ...build], { cwd: root, stdio: "inherit" });
  const tgz = npm(["pack", "--pack-destination", work], pkgDir).trim().split("\n").at(-1) ?? "";
  const project = join(work, label);
  execFileSync("mkdir", ["-p", project]);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: `try-${label}`, private: true }));
  npm(["install", "--omit=dev", join(work, tgz)], project);
  const { bytes, files } = du(join(project, "node_modules"));
  const packages = npm(["ls", "--all", "--parseable", "--omit=dev"], project).trim().split("\n").length - 1;
  return { label, tarball: tgz, tarballBytes: statSync(join(work, tgz)).size, bytes, files, packages };
}

try {
  const full = measure("livy-operator", root, ["build"]);
  const light = measure("client", join(root, "packages", "client"), ["build:client"]);
  const mb = (b: number) => (b / 1e6).toFixed(1);
  process.stdout.write(`${JSON.stringify({ full, light }, null, 2)}\n\n`);
  process.stdout.write(
    [
      "| package | tarball | installed node_modules | files | packages |",
      "| --- | ---: | ---: | ---: | ---: |",
      ...[full, light].map(
        (m) =>
          `| ${m.label} | ${(m.tarballBytes / 1e3).toFixed(0)} kB | ${mb(m.bytes)} MB | ${m.files} | ${m.packages} |`,
      ),
      "",
    ].join("\n"),
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
