/**
 * The client's Kubernetes entry (`src/livy/kube.ts`) and `livyctl --livysession` against the test bed: the
 * real operator on the real API server, its Livy servers played by the stand-in.
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { LivyTimeoutError } from "../../src/livy/index.ts";
import {
  connectKube,
  connectLivySession,
  LivySessionNotReadyError,
  LivySessionTarget,
  resolveLivySession,
  startLivySession,
} from "../../src/livy/kube.ts";
import { testbed } from "../testbed/context.ts";
import { REPO_ROOT } from "../testbed/paths.ts";
import {
  applySession,
  condition,
  createNamespace,
  installCrd,
  kube,
  kubectl,
  type OperatorProcess,
  startOperator,
  until,
  waitFor,
} from "./harness.ts";

const run = promisify(execFile);

describe("reaching Livy through a LivySession", () => {
  let op: OperatorProcess;
  let ns: string;

  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("client");
    op = await startOperator({ name: "client" });
  });

  afterAll(async () => {
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
      () => "",
    );
    await op?.stop();
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("waits (by watching) until a new LivySession is Ready, then runs statements on it", async () => {
    await applySession(ns, "ready", { kind: "pyspark", idleTimeout: "1h" });
    const { endpoint, client, session } = await connectLivySession(await kube(), ns, "ready", {
      timeoutMs: 60_000,
    });
    try {
      expect(endpoint).toMatchObject({ namespace: ns, name: "ready", serverURL: testbed().standinUrl });
      await expect(session.run("1 + 1")).resolves.toMatchObject({ text: "2" });
    } finally {
      await client.close();
    }
  });

  it("wakes a LivySession torn down for idleness and gets the new endpoint", async () => {
    await applySession(ns, "sleepy", { kind: "pyspark", idleTimeout: "2s" });
    const first = await resolveLivySession(await kube(), ns, "sleepy", { timeoutMs: 60_000 });
    await waitFor(ns, "sleepy", (ls) => condition(ls, "Idle")?.status === "True", "Idle", 60_000);
    await expect(
      resolveLivySession(await kube(), ns, "sleepy", { wake: false, timeoutMs: 500 }),
    ).rejects.toBeInstanceOf(LivyTimeoutError);
    const woken = await resolveLivySession(await kube(), ns, "sleepy", { timeoutMs: 60_000 });
    expect(woken.sessionId).not.toBe(first.sessionId);
  });

  it("follows a LivySession across an idle teardown: the next submission wakes it and goes to the new session", async () => {
    await applySession(ns, "follow", { kind: "pyspark", idleTimeout: "2s" });
    const target = new LivySessionTarget(await kube(), ns, "follow", { timeoutMs: 60_000 });
    try {
      await expect(target.run("1 + 1")).resolves.toMatchObject({ text: "2" });
      const before = target.endpoint?.sessionId;
      await waitFor(ns, "follow", (ls) => condition(ls, "Idle")?.status === "True", "Idle", 60_000);
      // The operator records Idle before it deletes the Livy session: wait until that session is really gone.
      await until("the idle Livy session deleted", async () => {
        const res = await fetch(`${testbed().standinUrl}/sessions/${before}`);
        await res.body?.cancel();
        return res.status === 404;
      });
      await expect(target.run("2 + 2")).resolves.toMatchObject({ text: "4" });
      expect(target.endpoint?.sessionId).not.toBe(before);
    } finally {
      await target.close();
    }
  });

  it("fails at once for a suspended LivySession", async () => {
    await applySession(ns, "parked", { kind: "pyspark", suspend: true });
    await waitFor(ns, "parked", (ls) => ls.status?.phase === "Suspended", "Suspended", 30_000);
    const started = Date.now();
    const err = await resolveLivySession(await kube(), ns, "parked", { timeoutMs: 30_000 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LivySessionNotReadyError);
    expect((err as Error).message).toContain("is suspended");
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("connectKube makes the client from a kubeconfig, taking the namespace from its context", async () => {
    const kc = parse(await kubectl(["config", "view", "--raw", "-o", "yaml"])) as {
      contexts: Array<{ name: string; context: Record<string, string> }>;
      clusters: Array<{ name: string; cluster: { server: string } }>;
    };
    for (const c of kc.contexts) c.context.namespace = ns;
    const file = join(tmpdir(), `kubeconfig-${ns}`);
    writeFileSync(file, stringify(kc), { mode: 0o600 });
    const k = await connectKube({ kubeconfig: file });
    try {
      expect(k.namespace).toBe(ns);
      // The test bed's API server: on loopback, or on the real node's host address when it has one.
      expect(k.server).toBe(kc.clusters[0]?.cluster.server);
      expect(k.server).toMatch(/^https:\/\/(127\.0\.0\.1|10\.247\.\d+\.1):\d+$/);
      await applySession(ns, "lib", { kind: "pyspark", idleTimeout: "1h" });
      const { client, session } = await connectLivySession(k.kube, k.namespace, "lib", { timeoutMs: 60_000 });
      try {
        await expect(session.run("5 * 5")).resolves.toMatchObject({ text: "25" });
      } finally {
        await client.close();
      }
      expect((await connectKube({ kubeconfig: file, namespace: "elsewhere" })).namespace).toBe("elsewhere");
    } finally {
      await k.close();
    }
  });

  it("startLivySession creates a LivySession, connects when Ready, and deletes it with `await using`", async () => {
    {
      await using ws = await startLivySession(
        await kube(),
        ns,
        "scratch",
        { kind: "pyspark" },
        { timeoutMs: 60_000 },
      );
      expect(ws.endpoint).toMatchObject({ namespace: ns, name: "scratch" });
      await expect(ws.session.run("7 * 6")).resolves.toMatchObject({ text: "42" });
    }
    await until(
      "the LivySession deleted",
      async () => !(await kubectl(["get", "livysessions", "-n", ns, "-o", "name"])).includes("scratch"),
      60_000,
    );
  });

  it("livyctl runs code in a LivySession by name", async () => {
    await applySession(ns, "cli", { kind: "pyspark", idleTimeout: "1h" });
    const { stdout } = await run(
      process.execPath,
      [
        join(REPO_ROOT, "src", "cli", "main.ts"),
        "--kubeconfig",
        testbed().kubeconfig,
        "run",
        "--livysession",
        `${ns}/cli`,
        "--wait",
        "60s",
        "6 * 7",
      ],
      { timeout: 90_000 },
    );
    expect(stdout).toBe("42\n");
  });
});
