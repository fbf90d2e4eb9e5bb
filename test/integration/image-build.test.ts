import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testbed } from "../testbed/context.ts";
import { REPO_ROOT } from "../testbed/paths.ts";
import { freePort } from "../testbed/process.ts";
import { copiesOf, parseDockerfile, type Replay, replay, type Stage } from "./dockerfile.ts";
import { installCrd, until } from "./harness.ts";

/**
 * No container engine runs here, so the operator image's build is replayed outside Docker, following the
 * Dockerfile itself: each stage's COPY lines into a clean directory, its `npm install` / `npm ci` / `npm run build`
 * commands, the final stage assembled from the others, and then the image's ENTRYPOINT started from the
 * final stage's WORKDIR against the test bed. What this does not prove (the base image, the `rm` of npm in
 * the final stage, file ownership): the kind e2e suite builds the real image where Docker exists.
 */
const dockerfileText = readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8");
const dockerignore = readFileSync(join(REPO_ROOT, ".dockerignore"), "utf8");
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
};
const lock = JSON.parse(readFileSync(join(REPO_ROOT, "package-lock.json"), "utf8")) as {
  packages: Record<string, { dev?: boolean }>;
};

describe("the operator image (Dockerfile replayed without Docker)", () => {
  const df = parseDockerfile(dockerfileText);
  const final = df.stages.at(-1) as Stage;
  let built: Replay | null = null;
  let proc: ChildProcess | null = null;

  beforeAll(() => {
    built = replay(df, REPO_ROOT, {
      ignore: dockerignore,
      log: (s) => process.stderr.write(`[image-build] ${s}\n`),
    });
    for (const s of built.skipped) process.stderr.write(`[image-build] not replayed (host-unsafe): ${s}\n`);
  }, 900_000);

  afterAll(async () => {
    if (proc && proc.exitCode === null) proc.kill("SIGKILL");
    if (built) {
      const root = dirname(built.dirs.get(final) ?? "/nonexistent/x");
      if (root.includes("image-build-")) rmSync(root, { recursive: true, force: true });
    }
  });

  it("is multi-stage on Node 24, non-root, with the operator's entry point", () => {
    expect(df.stages.length).toBeGreaterThanOrEqual(2);
    for (const s of df.stages) expect(s.from).toMatch(/^node:24(-|$)/);
    expect(final.entrypoint).toEqual(["node", "dist/operator/main.js"]);
    expect(final.user).toMatch(/^[1-9][0-9]*(:[1-9][0-9]*)?$/); // numeric: runAsNonRoot can verify it
    expect(final.exposed).toContain("8080");
    // the final stage takes only built output and production dependencies from the others
    const sources = copiesOf(final).flatMap((c) => c.sources.map((s) => `${c.from ?? "context"}:${s}`));
    expect(sources.some((s) => s.endsWith("/dist"))).toBe(true);
    expect(sources.some((s) => s.endsWith("/node_modules"))).toBe(true);
    expect(sources.filter((s) => s.startsWith("context:")).every((s) => !s.includes("src"))).toBe(true);
  });

  it("ran the full install, the build and the production-only `npm ci --omit=dev` from the lockfile", () => {
    const ran = built?.ran ?? [];
    expect(ran.some((r) => /npm (ci|install)\b(?!.*--omit=dev)/.test(r))).toBe(true);
    expect(ran.some((r) => /npm run build/.test(r))).toBe(true);
    expect(ran.some((r) => /npm ci .*--omit=dev/.test(r))).toBe(true);
  });

  it("ships production dependencies only", () => {
    const dir = built?.dirs.get(final) ?? "";
    const modules = join(dir, "node_modules");
    for (const dep of Object.keys(pkg.dependencies)) expect(existsSync(join(modules, dep)), dep).toBe(true);
    // what the lockfile marks dev-only (the dev tools and everything only they need) must be absent;
    // a devDependency that a production dependency also needs (e.g. @types/node) is rightly present
    const devOnly = Object.entries(lock.packages)
      .filter(([path, p]) => path.startsWith("node_modules/") && p.dev === true)
      .map(([path]) => path);
    expect(devOnly.length).toBeGreaterThan(0);
    expect(devOnly.filter((path) => existsSync(join(dir, path)))).toEqual([]);
    for (const tool of ["typescript", "vitest", "@biomejs/biome", "testcontainers", "fast-check"]) {
      expect(existsSync(join(modules, tool)), tool).toBe(false);
    }
    expect(existsSync(join(dir, "src"))).toBe(false);
    expect(existsSync(join(dir, "dist", "operator", "main.js"))).toBe(true);
    const size = execFileSync("du", ["-sh", dir], { encoding: "utf8" }).split("\t")[0];
    process.stderr.write(`[image-build] final stage (app only, without the base image): ${size}\n`);
  });

  it("starts the entry point and serves /healthz and /readyz against the test bed", async () => {
    await installCrd();
    const port = await freePort();
    const [cmd, ...args] = final.entrypoint ?? [];
    expect(cmd).toBe("node");
    let out = "";
    // only what the image would have: its ENV, the flags; no KUBECONFIG from this process
    proc = spawn(
      process.execPath,
      [
        ...args,
        "--kubeconfig",
        testbed().kubeconfig,
        "--http-port",
        String(port),
        "--http-host",
        "127.0.0.1",
      ],
      {
        cwd: built?.dirs.get(final),
        env: { PATH: dirname(process.execPath), HOME: "/nonexistent", ...final.env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    proc.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    proc.stderr?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const get = async (path: string) => {
      if (proc?.exitCode !== null) throw new Error(`the operator exited with ${proc?.exitCode}:\n${out}`);
      const res = await fetch(`http://127.0.0.1:${port}${path}`).catch(() => null);
      return res ? { status: res.status, body: await res.text() } : null;
    };
    const healthz = await until("/healthz", async () => (await get("/healthz"))?.status === 200, 60_000);
    expect(healthz).toBe(true);
    const readyz = await until("/readyz", async () => (await get("/readyz"))?.status === 200, 60_000);
    expect(readyz).toBe(true);
    const metrics = await get("/metrics");
    expect(metrics?.body).toContain("controller_runtime_reconcile_total");
    const exited = new Promise<number | null>((r) => proc?.once("exit", (code) => r(code)));
    proc.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
