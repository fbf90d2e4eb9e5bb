/**
 * The light package as a user gets it: packages/client built, packed and installed into an empty project by
 * npm (production dependencies only), then used from plain JavaScript against the test bed's stand-in.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { testbed } from "../testbed/context.ts";
import { REPO_ROOT } from "../testbed/paths.ts";

const run = promisify(execFile);

describe("@livy-operator/client installed on its own", () => {
  it("installs with only undici and zod, and runs statements with `await using` and typed rows", async () => {
    const work = mkdtempSync(join(tmpdir(), "client-pkg-"));
    await run("npm", ["run", "build:client"], { cwd: REPO_ROOT });
    const { stdout: packed } = await run("npm", ["pack", "--pack-destination", work], {
      cwd: join(REPO_ROOT, "packages", "client"),
    });
    const tgz = join(work, packed.trim().split("\n").at(-1) ?? "");
    const project = join(work, "app");
    await run("mkdir", ["-p", project]);
    writeFileSync(
      join(project, "package.json"),
      JSON.stringify({ name: "app", private: true, type: "module" }),
    );
    await run("npm", ["install", "--omit=dev", "--prefer-offline", "--no-audit", "--no-fund", tgz], {
      cwd: project,
      timeout: 300_000,
    });
    const installed = readdirSync(join(project, "node_modules")).filter((d) => !d.startsWith("."));
    expect(installed.sort()).toEqual(["@livy-operator", "undici", "zod"]);
    writeFileSync(
      join(project, "main.js"),
      `import { LivyClient, tableRows } from "@livy-operator/client";
const client = new LivyClient({ baseUrl: process.argv[2] });
let id;
{
  await using session = await client.startSession({ kind: "pyspark" }, { timeoutMs: 30_000 });
  id = session.id;
  const handles = await Promise.all(["x = 40", "x + 2"].map((c) => session.submit(c)));
  console.log((await handles[1].result).text);
  console.log(JSON.stringify(await session.sql("SELECT id FROM range(2)")));
}
console.log(await client.getSession(id).then(() => "still there", (e) => e.code));
await client.close();
`,
    );
    const { stdout } = await run(process.execPath, ["main.js", testbed().standinUrl], { cwd: project });
    expect(stdout).toBe('42\n[{"id":0},{"id":1}]\nLIVY_SESSION_GONE\n');
  });
});
