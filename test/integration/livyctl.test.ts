/**
 * livyctl as kubectl users expect it, against the test bed's real API server and the operator (its Livy
 * servers played by the stand-in): the namespace of the kubeconfig context, -n, --context, -o; the
 * LivySession commands; exit codes and messages that say whether Kubernetes or Livy failed; the kubectl
 * plugin and its completion through the real kubectl.
 */
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { EXIT } from "../../src/cli/render.ts";
import { testbed } from "../testbed/context.ts";
import { REPO_ROOT } from "../testbed/paths.ts";
import {
  condition,
  createNamespace,
  getSession,
  installCrd,
  kubectl,
  type OperatorProcess,
  startOperator,
  waitFor,
} from "./harness.ts";

const CLI = join(REPO_ROOT, "src", "cli");
const dir = mkdtempSync(join(tmpdir(), "livyctl-it-"));
const bin = join(dir, "bin");

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], env: Record<string, string> = {}, stdin = ""): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, PATH: `${bin}:${testbed().binDirs.join(":")}:${process.env.PATH}`, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.stdin.end(stdin);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("livyctl against the real API server", () => {
  let op: OperatorProcess;
  let ns: string;
  let other: string;
  let kubeconfig: string;
  const livyctl = (args: string[], stdin = "") => exec("livyctl", args, { KUBECONFIG: kubeconfig }, stdin);

  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("cli");
    other = await createNamespace("cli-other");
    op = await startOperator({ name: "livyctl" });
    // the test bed's kubeconfig with two contexts: `team` (namespace ns, current) and `other`
    const kc = parse(await kubectl(["config", "view", "--raw", "-o", "yaml"])) as {
      contexts: Array<{ name: string; context: Record<string, string> }>;
      "current-context": string;
    };
    const base = kc.contexts.find((c) => c.name === kc["current-context"]) ?? kc.contexts[0];
    if (!base) throw new Error("the test bed's kubeconfig has no context");
    kc.contexts = [
      { name: "team", context: { ...base.context, namespace: ns } },
      { name: "other", context: { ...base.context, namespace: other } },
    ];
    kc["current-context"] = "team";
    kubeconfig = join(dir, "kubeconfig");
    writeFileSync(kubeconfig, stringify(kc), { mode: 0o600 });
    mkdirSync(bin, { recursive: true });
    for (const [file, entry] of [
      ["livyctl", "main.ts"],
      ["kubectl-livy", "kubectl-livy.ts"],
      ["kubectl_complete-livy", "kubectl-complete-livy.ts"],
    ] as const) {
      writeFileSync(join(bin, file), `#!/bin/sh\nexec "${process.execPath}" "${join(CLI, entry)}" "$@"\n`);
      chmodSync(join(bin, file), 0o755);
    }
  });

  afterAll(async () => {
    for (const n of [ns, other])
      await kubectl(["delete", "livysessions", "--all", "-n", n, "--wait=true", "--timeout=60s"]).catch(
        () => "",
      );
    await op?.stop();
    for (const n of [ns, other]) await kubectl(["delete", "namespace", n, "--wait=false"]).catch(() => "");
  });

  it("takes the namespace from the kubeconfig context; -n and --context override it", async () => {
    expect(await livyctl(["create", "ctx", "--kind", "pyspark", "--idle-timeout", "1h"])).toMatchObject({
      code: 0,
      stdout: "livysession.livy.dev/ctx created\n",
    });
    expect(await getSession(ns, "ctx")).not.toBeNull();
    const listed = await livyctl(["get"]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^NAME\s+PHASE\s+READY\s+REASON\s+STATE\s+ENDPOINT\s+AGE\nctx\s/);
    expect(await livyctl(["--context", "other", "get"])).toMatchObject({
      code: 0,
      stdout: "",
      stderr: `No LivySessions found in ${other} namespace.\n`,
    });
    expect((await livyctl(["--context", "other", "-n", ns, "-o", "name", "get"])).stdout).toBe(
      "livysession.livy.dev/ctx\n",
    );
    expect((await livyctl(["--context", "other", "get", `${ns}/ctx`, "-o", "name"])).stdout).toBe(
      "livysession.livy.dev/ctx\n",
    );
    const all = await livyctl(["get", "-A"]);
    expect(all.stdout).toMatch(new RegExp(`^NAMESPACE\\s+NAME\\s+PHASE.*\\n(.*\\n)*${ns}\\s+ctx\\s`));
  });

  it("creates, waits, shows (-o json|yaml|wide, describe), runs, suspends, resumes, wakes and deletes", async () => {
    const created = await livyctl([
      "create",
      "life",
      "--idle-timeout",
      "1h",
      "--conf",
      "spark.x=1",
      "--wait",
      "60s",
    ]);
    expect(created).toMatchObject({
      code: 0,
      stdout: "livysession.livy.dev/life created\nlivysession.livy.dev/life Ready\n",
    });
    const json = JSON.parse((await livyctl(["get", "life", "-o", "json"])).stdout);
    expect(json).toMatchObject({
      kind: "LivySession",
      metadata: { name: "life", namespace: ns },
      spec: { session: { conf: { "spark.x": "1" } } },
      status: { phase: "Ready" },
    });
    expect(parse((await livyctl(["get", "life", "-o", "yaml"])).stdout)).toMatchObject({
      metadata: { name: "life" },
    });
    const wide = await livyctl(["get", "life", "-o", "wide"]);
    expect(wide.stdout).toMatch(
      /^NAME\s+PHASE\s+READY\s+REASON\s+STATE\s+ENDPOINT\s+AGE\s+KIND\s+RESTARTS\s+LAST-ACTIVITY\s+MESSAGE\n/,
    );
    expect(wide.stdout).toMatch(/\nlife\s+Ready\s+True\s+Ready\s+idle\s+http/);
    const described = await livyctl(["describe", "life"]);
    expect(described.code).toBe(0);
    expect(described.stdout).toMatch(/^Name:\s+life\nNamespace:\s+/);
    expect(described.stdout).toMatch(/Conditions:\n\s+TYPE\s+STATUS\s+REASON\s+AGE\s+MESSAGE\n/);
    expect(described.stdout).toMatch(/\n\s+Ready\s+True\s+Ready\s/);
    expect(described.stdout).toMatch(/Events:\n/);

    expect(await livyctl(["run", "--livysession", "life", "6 * 7"])).toMatchObject({
      code: 0,
      stdout: "42\n",
    });
    expect(await livyctl(["statements", "--livysession", "life"])).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/available\s+100%.*6 \* 7/),
    });
    expect((await livyctl(["logs", "life", "--tail", "5"])).code).toBe(0);

    expect(await livyctl(["suspend", "life"])).toMatchObject({
      code: 0,
      stdout: "livysession.livy.dev/life suspended\n",
    });
    await waitFor(ns, "life", (ls) => ls.status?.phase === "Suspended", "Suspended", 30_000);
    // a suspended session cannot become Ready: fail at once, exit 3, saying why
    const parked = await livyctl(["run", "--livysession", "life", "1 + 1"]);
    expect(parked.code).toBe(EXIT.sessionNotUsable);
    expect(parked.stderr).toContain(`LivySession ${ns}/life is suspended`);
    expect(await livyctl(["resume", "life"])).toMatchObject({
      code: 0,
      stdout: "livysession.livy.dev/life resumed\n",
    });
    expect(await livyctl(["wake", "life", "--timeout", "60s"])).toMatchObject({ code: 0 });
    expect(await livyctl(["run", "--livysession", "life", "--wait", "0", "1 + 1"])).toMatchObject({
      code: 0,
      stdout: "2\n",
    });

    expect(await livyctl(["delete", "life", "--timeout", "60s"])).toMatchObject({
      code: 0,
      stdout: "livysession.livy.dev/life deleted\n",
    });
    expect(await getSession(ns, "life")).toBeNull();
    const gone = await livyctl(["get", "life"]);
    expect(gone.code).toBe(EXIT.kubernetes);
    expect(gone.stderr).toMatch(/^error: Kubernetes API server answered 404 NotFound: .*"life" not found/);
    // about twenty livyctl runs, each a Node process start (seconds apiece on a loaded machine), each bounded
  }, 900_000);

  it("an idle LivySession: --wait 0 fails at once (exit 3) and says how to wake it; the default wakes it and says so", async () => {
    expect((await livyctl(["create", "nap", "--idle-timeout", "2s", "--wait", "60s"])).code).toBe(0);
    await waitFor(ns, "nap", (ls) => condition(ls, "Idle")?.status === "True", "Idle", 60_000);
    // "at once" is measured against what starting livyctl itself costs right now (a Node process that
    // loads the CLI: seconds at a load average of 40 on 2 cores), not against a fixed wall-clock bound
    const baseline = Date.now();
    expect((await livyctl(["get", "nap", "-o", "name"])).code).toBe(0);
    const startCost = Date.now() - baseline;
    const started = Date.now();
    const now = await livyctl(["run", "--livysession", "nap", "--wait", "0", "1 + 1"]);
    expect(now.code).toBe(EXIT.sessionNotUsable);
    expect(now.stderr).toBe(
      `error: LivySession ${ns}/nap is Idle, not Ready (it was torn down after its idleTimeout: \`wake\` it, ` +
        "or pass --wait 5m to wake it and wait) (IdleTimeout: " +
        `${condition(await getSession(ns, "nap"), "Ready")?.message ?? ""})\n`,
    );
    // far below the default wait (5m) it would have spent waking the session
    expect(Date.now() - started).toBeLessThan(2 * startCost + 10_000);
    expect(condition(await getSession(ns, "nap"), "Idle")?.status).toBe("True");
    const woken = await livyctl(["run", "--livysession", "nap", "3 * 3"]);
    expect(woken).toMatchObject({ code: 0, stdout: "9\n" });
    expect(woken.stderr).toMatch(
      new RegExp(`^LivySession ${ns}/nap is Idle \\(IdleTimeout\\): woken; waiting up to 5m for Ready\\n$`),
    );
  }, 600_000);

  it("a Failed LivySession exits 3 with its reason", async () => {
    expect((await livyctl(["create", "doomed", "--idle-timeout", "1h", "--wait", "60s"])).code).toBe(0);
    const id = (await getSession(ns, "doomed"))?.status?.livySessionId;
    await fetch(`${testbed().standinUrl}/_standin/sessions/${id}/kill`, { method: "POST" });
    await waitFor(ns, "doomed", (ls) => ls.status?.phase === "Failed", "Failed", 30_000);
    const res = await livyctl(["run", "--livysession", "doomed", "1 + 1"]);
    expect(res.code).toBe(EXIT.sessionNotUsable);
    expect(res.stderr).toMatch(new RegExp(`^error: LivySession ${ns}/doomed has failed \\(SessionDead: `));
    const json = await livyctl(["-o", "json", "run", "--livysession", "doomed", "1 + 1"]);
    expect(JSON.parse(json.stderr)).toMatchObject({
      error: { code: "LIVY_SESSION_NOT_USABLE", name: "doomed", phase: "Failed", reason: "SessionDead" },
    });
  });

  it("the API server's refusals exit 6 and say so; an invalid spec exits 2 naming the field", async () => {
    // a service account with no permission at all
    await kubectl(["create", "serviceaccount", "nobody", "-n", ns]);
    const token = (await kubectl(["create", "token", "nobody", "-n", ns])).trim();
    const kc = parse(
      await kubectl(["config", "view", "--raw", "-o", "yaml", "--kubeconfig", kubeconfig]),
    ) as {
      users: Array<{ name: string; user: Record<string, string> }>;
    };
    for (const u of kc.users) u.user = { token };
    const nobody = join(dir, "nobody");
    writeFileSync(nobody, stringify(kc), { mode: 0o600 });
    const denied = await exec("livyctl", ["get"], { KUBECONFIG: nobody });
    expect(denied.code).toBe(EXIT.kubernetes);
    expect(denied.stderr).toMatch(
      /^error: Kubernetes API server answered 403 Forbidden: .*cannot list resource "livysessions".*\(the kubeconfig's user lacks the permission\)\n$/,
    );

    const bad = await livyctl(["create", "bad", "--idle-timeout", "15 minutes"]);
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.stderr).toContain("spec.idleTimeout");
    expect(await getSession(ns, "bad")).toBeNull();
    const dup = await livyctl(["create", "ctx"]);
    expect(dup.code).toBe(EXIT.kubernetes);
    expect(dup.stderr).toMatch(/answered 409 AlreadyExists/);
  });

  it("creates from a manifest on stdin", async () => {
    const manifest = stringify({
      apiVersion: "livy.dev/v1alpha1",
      kind: "LivySession",
      metadata: { name: "from-file" },
      spec: { kind: "spark", suspend: true },
    });
    expect(await livyctl(["create", "-f", "-"], manifest)).toMatchObject({
      code: 0,
      stdout: "livysession.livy.dev/from-file created\n",
    });
    expect((await getSession(ns, "from-file"))?.spec).toMatchObject({ kind: "spark", suspend: true });
  });

  it("works as a kubectl plugin, with completion through kubectl", async () => {
    const env = { KUBECONFIG: kubeconfig };
    const plugin = await exec("kubectl", ["livy", "get", "ctx", "-o", "name"], env);
    expect(plugin).toMatchObject({ code: 0, stdout: "livysession.livy.dev/ctx\n" });
    const help = await exec("kubectl", ["livy", "--help"], env);
    expect(help.stdout).toMatch(/^Usage: kubectl livy \[options\] \[command\]/);
    // kubectl ≥ 1.26 asks kubectl_complete-livy for `kubectl livy ...` completions
    const names = await exec("kubectl", ["__complete", "livy", "describe", ""], env);
    expect(names.code).toBe(0);
    const lines = names.stdout.trim().split("\n");
    expect(lines).toContain("ctx");
    expect(lines.at(-1)).toBe(":4");
    const verbs = await exec("kubectl", ["__complete", "livy", "su"], env);
    expect(verbs.stdout.trim().split("\n")).toEqual(["suspend", ":4"]);
    // and the plugin sees the namespace of --context / -n through its own flags
    const ns2 = await exec("kubectl", ["__complete", "livy", "-n", other, "describe", ""], env);
    expect(ns2.stdout.trim().split("\n")).toEqual([":4"]);
  });

  it("the wait for a LivySession that never becomes Ready is bounded and says it is a timeout", async () => {
    // no operator: nothing will make it Ready
    await op.stop();
    try {
      expect((await livyctl(["create", "held"])).code).toBe(0);
      const res = await livyctl(["run", "--livysession", "held", "--wait", "2s", "1 + 1"]);
      expect(res.code).toBe(EXIT.unreachable);
      expect(res.stderr).toBe(
        `LivySession ${ns}/held is Pending; waiting up to 2s for Ready\n` +
          `error: waiting for LivySession ${ns}/held to be Ready timed out after 2000 ms\n`,
      );
    } finally {
      op = await startOperator({ name: "livyctl-2" });
    }
  });
});
