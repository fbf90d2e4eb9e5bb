/**
 * LivySession health as GitOps tools compute it, on objects the operator wrote on the real API server: the
 * Argo CD health check and the Flux healthCheckExprs of deploy/health/ run by the code those tools run
 * (test/health: gopher-lua as Argo CD drives it, Flux's CEL status evaluator, kstatus), against the rule of
 * src/api/health.ts. An idle LivySession is healthy for both checks; kstatus alone cannot say so.
 */
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { argoCdHealthLua, fluxHealthCheckExprs, livySessionHealth } from "../../src/api/health.ts";
import type { LivySession } from "../../src/api/index.ts";
import { testbed } from "../testbed/context.ts";
import { cacheDir, REPO_ROOT } from "../testbed/paths.ts";
import {
  applySession,
  condition,
  createNamespace,
  getSession,
  installCrd,
  isReady,
  kubectl,
  type OperatorProcess,
  startOperator,
  waitFor,
} from "./harness.ts";

const run = promisify(execFile);
const HEALTH_DIR = join(REPO_ROOT, "test", "health");

/** Builds test/health once per version of its sources (cached like the test bed's Go components). */
async function checker(): Promise<string> {
  const hash = createHash("sha256");
  for (const f of ["go.mod", "go.sum", "main.go"]) hash.update(readFileSync(join(HEALTH_DIR, f)));
  const dir = join(cacheDir(), `healthcheck-${hash.digest("hex").slice(0, 12)}`);
  const bin = join(dir, "healthcheck");
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    await run("go", ["build", "-trimpath", "-o", bin, "."], {
      cwd: HEALTH_DIR,
      timeout: 900_000,
      env: { ...process.env, GOFLAGS: "-mod=mod" },
    });
  }
  return bin;
}

interface Verdict {
  argocd: { status: string; message: string };
  flux: string;
  kstatus: string;
  error?: string;
}

async function verdicts(bin: string, objects: unknown[]): Promise<Verdict[]> {
  const input = JSON.stringify({ lua: argoCdHealthLua(), flux: fluxHealthCheckExprs(), objects });
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.on("exit", (code) =>
      code === 0
        ? resolve(JSON.parse(out) as Verdict[])
        : reject(new Error(`healthcheck exited ${code}: ${err}`)),
    );
    child.stdin.end(input);
  });
}

const FLUX: Record<string, string> = {
  Healthy: "Current",
  Suspended: "Current",
  Degraded: "Failed",
  Progressing: "InProgress",
};

describe("LivySession health for Argo CD, Flux and kstatus", () => {
  let op: OperatorProcess;
  let ns: string;
  let bin: string;
  const standin = () => testbed().standinUrl;

  beforeAll(async () => {
    bin = await checker();
    await installCrd();
    ns = await createNamespace("health");
    op = await startOperator({ name: "health" });
  });

  afterAll(async () => {
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
      () => "",
    );
    await op?.stop();
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("Ready, Idle and Suspended are healthy, Failed is degraded, a start in progress is progressing", async () => {
    await applySession(ns, "ready", { kind: "pyspark", idleTimeout: "1h" });
    await applySession(ns, "idle", { kind: "pyspark", idleTimeout: "2s" });
    await applySession(ns, "parked", { kind: "pyspark", suspend: true });
    await applySession(ns, "failed", { kind: "pyspark", idleTimeout: "1h" });
    await waitFor(ns, "ready", isReady, "Ready");
    await waitFor(ns, "idle", (ls) => condition(ls, "Idle")?.status === "True", "Idle", 60_000);
    await waitFor(ns, "parked", (ls) => ls.status?.phase === "Suspended", "Suspended");
    const doomed = await waitFor(ns, "failed", isReady, "Ready");
    await fetch(`${standin()}/_standin/sessions/${doomed.status?.livySessionId}/kill`, { method: "POST" });
    await waitFor(ns, "failed", (ls) => ls.status?.phase === "Failed", "Failed", 30_000);
    // a start that takes its time: the stand-in's sessions start slowly while this one is created
    const config = (await (await fetch(`${standin()}/_standin/config`)).json()) as {
      sessionStartupMs: number;
    };
    await fetch(`${standin()}/_standin/config`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sessionStartupMs: 600_000 }),
    });
    try {
      await applySession(ns, "starting", { kind: "pyspark" });
      await waitFor(
        ns,
        "starting",
        (ls) => condition(ls, "Ready")?.reason === "Starting",
        "Starting",
        30_000,
      );
    } finally {
      await fetch(`${standin()}/_standin/config`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sessionStartupMs: config.sessionStartupMs }),
      });
    }

    const names = ["ready", "idle", "parked", "failed", "starting"];
    const objects = await Promise.all(names.map(async (n) => (await getSession(ns, n)) as LivySession));
    const results = await verdicts(bin, objects);
    const expected = ["Healthy", "Healthy", "Suspended", "Degraded", "Progressing"];
    names.forEach((name, i) => {
      const r = results[i] as Verdict;
      const ours = livySessionHealth(objects[i] as LivySession);
      expect({ name, ours: ours.status }).toEqual({ name, ours: expected[i] });
      expect(r.error, name).toBeUndefined();
      // Argo CD's Lua and Flux's CEL agree with the rule
      expect({ name, argocd: r.argocd.status, flux: r.flux }).toEqual({
        name,
        argocd: ours.status,
        flux: FLUX[ours.status],
      });
      expect(r.argocd.message, name).toBe(ours.message);
    });
    // kstatus alone (Flux without healthCheckExprs) reads Ready=False as InProgress whatever the reason: an
    // idle or suspended session looks in progress and a failed one never fails. What docs/api.md tells
    // Flux users, and why the expressions above are needed.
    expect(results.map((r) => r.kstatus)).toEqual([
      "Current",
      "InProgress",
      "InProgress",
      "InProgress",
      "InProgress",
    ]);
  });

  it("the generated files are what the tools are given", () => {
    expect(readFileSync(join(REPO_ROOT, "deploy", "health", "argocd-livysession-health.lua"), "utf8")).toBe(
      argoCdHealthLua(),
    );
    const flux = parse(
      readFileSync(join(REPO_ROOT, "deploy", "health", "flux-healthcheckexprs.yaml"), "utf8"),
    );
    expect(flux).toEqual([fluxHealthCheckExprs()]);
  });

  it("a spec change not yet observed, and a deletion, are progressing for every tool", async () => {
    const ready = (await getSession(ns, "ready")) as LivySession & { metadata: { generation?: number } };
    const stale = {
      ...ready,
      metadata: { ...ready.metadata, generation: (ready.metadata.generation ?? 1) + 1 },
    };
    const deleting = {
      ...ready,
      metadata: { ...ready.metadata, deletionTimestamp: new Date().toISOString() },
    };
    const [a, b] = await verdicts(bin, [stale, deleting]);
    expect(livySessionHealth(stale).status).toBe("Progressing");
    expect(livySessionHealth(deleting).status).toBe("Progressing");
    expect(a).toMatchObject({ argocd: { status: "Progressing" }, flux: "InProgress", kstatus: "InProgress" });
    expect(b).toMatchObject({
      argocd: { status: "Progressing" },
      flux: "InProgress",
      kstatus: "Terminating",
    });
  });
});
