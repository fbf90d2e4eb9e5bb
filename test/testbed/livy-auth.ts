/**
 * The Livy auth filter (deploy/livy-image/auth) compiled for the test bed's Livy: javac against the
 * servlet API in Livy's own jars/, packed with jar, cached by a hash of the source (the image compiles the
 * same file in its build). A few seconds, once.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { LivyInstall } from "./livy.ts";
import { cacheDir, REPO_ROOT } from "./paths.ts";

const run = promisify(execFile);
export const AUTH_FILTER_SOURCE = join(
  REPO_ROOT,
  "deploy",
  "livy-image",
  "auth",
  "src",
  "dev",
  "livyoperator",
  "auth",
  "SessionTokenFilter.java",
);

/** The filter's jar for this Livy install, built when the cache lacks it. */
export async function ensureLivyAuthJar(install: LivyInstall): Promise<string> {
  const source = readFileSync(AUTH_FILTER_SOURCE);
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 12);
  const dir = join(cacheDir(), `livy-auth-${hash}`);
  const jar = join(dir, "livy-auth.jar");
  if (existsSync(jar)) return jar;
  const servlet = readdirSync(join(install.livyHome, "jars")).find((f) =>
    /^javax\.servlet-api-.*\.jar$/.test(f),
  );
  if (!servlet) throw new Error(`no javax.servlet-api jar in ${install.livyHome}/jars`);
  const bin = (tool: string) => (install.javaHome ? join(install.javaHome, "bin", tool) : tool);
  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), "livy-auth-build-"));
  try {
    await run(bin("javac"), [
      "--release",
      "8",
      "-Xlint:-options",
      "-cp",
      join(install.livyHome, "jars", servlet),
      "-d",
      join(work, "classes"),
      AUTH_FILTER_SOURCE,
    ]);
    mkdirSync(join(work, "out"));
    await run(bin("jar"), ["cf", join(work, "out", "livy-auth.jar"), "-C", join(work, "classes"), "."]);
    // another build may have finished meanwhile: the first rename wins, both are the same bytes
    if (!existsSync(dir)) renameSync(join(work, "out"), dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return jar;
}
