/**
 * kubectl livy as krew installs it: scripts/krew-package.ts builds the archive and fills in the manifest,
 * the real krew (built from the Go module proxy, cached like the test bed's components) installs it from that
 * archive, checking its sha256, and the real kubectl runs the plugin against the test bed's API server.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { testbed } from "../testbed/context.ts";
import { cacheDir, REPO_ROOT } from "../testbed/paths.ts";

const run = promisify(execFile);
const KREW_VERSION = "v0.4.3";

async function krew(): Promise<string> {
  const bin = join(cacheDir(), `krew-${KREW_VERSION}`, "bin");
  if (!existsSync(join(bin, "krew"))) {
    mkdirSync(bin, { recursive: true });
    await run("go", ["install", `sigs.k8s.io/krew/cmd/krew@${KREW_VERSION}`], {
      env: { ...process.env, GOBIN: bin },
      timeout: 900_000,
    });
  }
  return join(bin, "krew");
}

describe("kubectl livy through krew", () => {
  it("packages, installs with krew from the archive, and runs as kubectl livy", async () => {
    const work = mkdtempSync(join(tmpdir(), "krew-it-"));
    const { stdout } = await run(
      process.execPath,
      [
        join(REPO_ROOT, "scripts", "krew-package.ts"),
        "--out",
        work,
        "--url-base",
        "https://example.invalid/releases",
      ],
      { cwd: REPO_ROOT, timeout: 600_000, maxBuffer: 64 << 20 },
    );
    const packed = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as {
      archive: string;
      manifest: string;
    };
    const manifest = parse((await run("cat", [packed.manifest])).stdout) as {
      spec: { version: string; platforms: Array<{ uri: string; sha256: string }> };
    };
    expect(manifest.spec.platforms[0]?.sha256).toMatch(/^[0-9a-f]{64}$/);
    const root = join(work, "krew-root");
    const env = {
      ...process.env,
      KREW_ROOT: root,
      KUBECONFIG: testbed().kubeconfig,
      PATH: `${join(root, "bin")}:${testbed().binDirs.join(":")}:${process.env.PATH}`,
    };
    await run(await krew(), ["install", `--manifest=${packed.manifest}`, `--archive=${packed.archive}`], {
      env,
      timeout: 300_000,
    });
    const version = await run("kubectl", ["livy", "--version"], { env });
    expect(`v${version.stdout.trim()}`).toBe(manifest.spec.version);
    const listed = await run("kubectl", ["livy", "get", "-A", "-o", "name"], { env });
    expect(listed.stderr).toBe("");
    // krew refuses an archive whose sha256 is not the manifest's
    await expect(
      run(
        await krew(),
        ["install", `--manifest=${packed.manifest}`, `--archive=${join(REPO_ROOT, "package.json")}`],
        {
          env: { ...env, KREW_ROOT: join(work, "other-root") },
        },
      ),
    ).rejects.toThrow(/sha256|checksum/i);
    // packing the plugin (npm pack, a Node start per step) and, the first time, building krew take minutes
    // on a loaded machine; each command has its own bound
  }, 1_200_000);
});
