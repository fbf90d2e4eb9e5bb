import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { newLines } from "../../src/cli/program.ts";
import { EXIT, exitCodeOf, renderLivySessions, renderTable } from "../../src/cli/render.ts";
import {
  LivyAbortError,
  LivyHttpError,
  LivyTimeoutError,
  LivyUnreachableError,
  SessionGoneError,
  SessionNotUsableError,
  StatementCancelledError,
  StatementError,
} from "../../src/livy/index.ts";
import { useStandin } from "./livy-fixtures.ts";

const fx = useStandin();
const MAIN = join(import.meta.dirname, "../../src/cli/main.ts");

function livyctl(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      env: { ...process.env, LIVY_URL: fx.standin.url, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.stdin.end(opts.stdin ?? "");
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

async function session(): Promise<string> {
  return String(await fx.idleSession(fx.client()));
}

// Each case starts Node processes one after another, which takes a while on a loaded machine: at load
// average 42-53 on 2 cores five cases took more than 60 s each (a start-up is 10-15 s there).
describe("livyctl", { timeout: 180_000 }, () => {
  it("runs code from an argument, a file and stdin, and prints the result", async () => {
    const id = await session();
    expect(await livyctl(["run", "-s", id, "1 + 1"])).toMatchObject({ code: 0, stdout: "2\n" });
    const file = join(mkdtempSync(join(tmpdir(), "livyctl-")), "job.py");
    writeFileSync(file, "x = 20\nx * 2 + 2\n");
    expect(await livyctl(["run", "-s", id, "-f", file])).toMatchObject({ code: 0, stdout: "42\n" });
    expect(await livyctl(["run", "-s", id], { stdin: "spark.range(7).count()" })).toMatchObject({
      code: 0,
      stdout: "7\n",
    });
  });

  it("prints tables aligned and results as JSON on request", async () => {
    const id = await session();
    const table = await livyctl([
      "run",
      "-s",
      id,
      "rows = [{'n': 1, 's': 'x'}, {'n': 10, 's': 'yy'}]\n%table rows",
    ]);
    expect(table).toMatchObject({ code: 0, stdout: "n   s\n1   x\n10  yy\n" });
    const json = await livyctl(["-o", "json", "run", "-s", id, "1 + 1"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ kind: "text", text: "2", sessionId: Number(id) });
  });

  it("exits 1 with the traceback when the statement fails", async () => {
    const id = await session();
    const res = await livyctl(["run", "-s", id, "1/0"]);
    expect(res.code).toBe(EXIT.statementFailed);
    expect(res.stderr).toBe("Traceback (most recent call last):\nZeroDivisionError: division by zero\n");
    const json = await livyctl(["-o", "json", "run", "-s", id, "1/0"]);
    expect(JSON.parse(json.stderr)).toMatchObject({
      error: { code: "LIVY_STATEMENT_ERROR", ename: "ZeroDivisionError", evalue: "division by zero" },
    });
  });

  it("exits 3 for a missing session, 4 for an unreachable server or a timeout, 2 for usage errors", async () => {
    expect((await livyctl(["run", "-s", "99", "1"])).code).toBe(EXIT.sessionNotUsable);
    expect((await livyctl(["--url", "http://127.0.0.1:1", "run", "-s", "0", "1"])).code).toBe(
      EXIT.unreachable,
    );
    const id = await session();
    const slow = await livyctl(["run", "-s", id, "--timeout", "100ms", "sleep 5"]);
    expect(slow.code).toBe(EXIT.unreachable);
    expect(slow.stderr).toContain("timed out after 100 ms");
    expect((await livyctl(["run", "1"])).code).toBe(EXIT.usage);
    expect((await livyctl(["run", "-s", id, "--timeout", "soon", "1"])).code).toBe(EXIT.usage);
    expect((await livyctl(["nonsense"])).code).toBe(EXIT.usage);
    expect(await livyctl(["--help"])).toMatchObject({ code: 0 });
  });

  it("waits for a starting session with --wait instead of failing", async () => {
    const id = await session();
    fx.standin.control.setSessionState(Number(id), "starting");
    expect((await livyctl(["run", "-s", id, "1"])).code).toBe(EXIT.sessionNotUsable);
    const waiting = livyctl(["run", "-s", id, "--wait", "30s", "3 * 3"]);
    setTimeout(() => fx.standin.control.setSessionState(Number(id), "idle"), 1_000);
    expect(await waiting).toMatchObject({ code: 0, stdout: "9\n" });
  });

  it("lists sessions and statements, shows one, prints logs and cancels", async () => {
    const id = await session();
    await livyctl(["run", "-s", id, "1 + 1"]);
    expect((await livyctl(["server", "sessions"])).stdout).toMatch(
      new RegExp(`^ID\\s+NAME\\s+KIND\\s+STATE.*\\n${id}\\s+pyspark\\s+idle`, "s"),
    );
    expect((await livyctl(["statements", "-s", id])).stdout).toMatch(/0\s+available\s+100%.*1 \+ 1/);
    expect(JSON.parse((await livyctl(["-o", "json", "server", "get", id, "0"])).stdout)).toMatchObject({
      id: 0,
      output: { data: { "text/plain": "2" } },
    });
    const yaml = await livyctl(["-o", "yaml", "server", "get", id, "0"]);
    expect(yaml.stdout).toMatch(/^id: 0\n/m);
    expect((await livyctl(["logs", "-s", id, "--tail", "1"])).stdout).toContain("Spark context started");
    // long enough that only the cancel ends it, however slowly livyctl starts on a loaded machine
    const handle = await fx.client().session(Number(id)).submit("sleep 600");
    expect(await livyctl(["cancel", "-s", id, String(handle.id)])).toMatchObject({
      code: 0,
      stdout: "canceled\n",
    });
    await expect(handle.result).rejects.toBeInstanceOf(StatementCancelledError);
  });

  it("saves an image result to a file", async () => {
    const id = await session();
    fx.standin.control.program("plot()", {
      data: { "image/png": Buffer.from("PNGDATA").toString("base64") },
    });
    const file = join(mkdtempSync(join(tmpdir(), "livyctl-")), "plot.png");
    const res = await livyctl(["run", "-s", id, "--save", file, "plot()"]);
    expect(res.code).toBe(0);
    expect(readFileSync(file, "utf8")).toBe("PNGDATA");
  });
});

describe("livyctl exit codes and tables", () => {
  const http = { status: 500, msg: "x", method: "GET", path: "/" };
  it.each([
    [
      new StatementError({ sessionId: 0, statementId: 0, ename: "E", evalue: "", traceback: [] }),
      EXIT.statementFailed,
    ],
    [new StatementCancelledError(0, 0), EXIT.statementFailed],
    [new SessionGoneError({ ...http, status: 404 }), EXIT.sessionNotUsable],
    [new SessionNotUsableError(0, "dead"), EXIT.sessionNotUsable],
    [new LivyUnreachableError({ url: "u", reason: "ECONNREFUSED", requestSent: false }), EXIT.unreachable],
    [new LivyTimeoutError("x", 1), EXIT.unreachable],
    [new LivyAbortError("x"), EXIT.interrupted],
    [new LivyHttpError(http), EXIT.livyError],
  ])("%s → %i", (err, code) => {
    expect(exitCodeOf(err)).toBe(code);
  });

  it("aligns columns and does not pad the last one", () => {
    expect(
      renderTable(
        ["A", "LONG"],
        [
          ["xyz", "1"],
          ["", "22"],
        ],
      ),
    ).toBe("A    LONG\nxyz  1\n     22\n");
  });
});

describe("livyctl follows kubectl without a cluster", { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "livyctl-kube-"));
  const down = join(dir, "down.yaml");
  // a context whose namespace is team-a, pointing at a port where nothing listens
  writeFileSync(
    down,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: c",
      '  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}',
      "users:",
      "- name: u",
      "  user: {token: abc}",
      "contexts:",
      "- name: team-a",
      "  context: {cluster: c, user: u, namespace: team-a}",
      "current-context: team-a",
      "",
    ].join("\n"),
  );
  const bad = join(dir, "bad.yaml");
  writeFileSync(bad, "apiVersion: v1\nclusters: [\n  - {name: x\n");

  it("prints its version with --version and version", async () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, "../../package.json"), "utf8")) as {
      version: string;
    };
    expect(await livyctl(["--version"])).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
    expect(JSON.parse((await livyctl(["-o", "json", "version"])).stdout)).toEqual({ livyctl: pkg.version });
  });

  it("exits 7 with a plain message for a missing or malformed kubeconfig, or an unknown context", async () => {
    // one process each, at once: Node's start-up is most of each case's time on a loaded machine
    const [missing, malformed, context, absent, none] = await Promise.all([
      livyctl(["--kubeconfig", join(dir, "nonexistent"), "get"]),
      livyctl(["--kubeconfig", bad, "get"]),
      livyctl(["--kubeconfig", down, "--context", "nope", "get"]),
      livyctl(["get"], { env: { KUBECONFIG: join(dir, "absent"), HOME: dir } }),
      livyctl(["get"], { env: { KUBECONFIG: "", HOME: dir } }),
    ]);
    expect(missing).toMatchObject({ code: EXIT.kubeconfig });
    expect(missing.stderr).toBe(`error: kubeconfig ${join(dir, "nonexistent")}: no such file\n`);
    expect(malformed.code).toBe(EXIT.kubeconfig);
    expect(malformed.stderr).toMatch(/^error: kubeconfig .*bad\.yaml is not a valid kubeconfig: .+\n$/);
    expect(context.code).toBe(EXIT.kubeconfig);
    expect(context.stderr).toContain('context "nope" is not in the kubeconfig (its contexts: team-a)');
    expect(absent).toMatchObject({
      code: EXIT.kubeconfig,
      stderr: `error: kubeconfig $KUBECONFIG (${join(dir, "absent")}): no such file\n`,
    });
    expect(none.code).toBe(EXIT.kubeconfig);
    expect(none.stderr).toContain("no usable kubeconfig");
  });

  it("says it is Kubernetes, which server and which context, and exits 6 when the API server is down", async () => {
    const res = await livyctl(["--kubeconfig", down, "run", "--livysession", "x", "1 + 1"]);
    expect(res.code).toBe(EXIT.kubernetes);
    // the namespace comes from the context
    expect(res.stderr).toBe(
      "error: cannot reach the Kubernetes API server at https://127.0.0.1:1 (context team-a) to read " +
        "LivySession team-a/x: connection refused (is the cluster running, and is this the right context?)\n",
    );
    const json = await livyctl(["--kubeconfig", down, "-n", "other", "-o", "json", "get", "x"]);
    expect(JSON.parse(json.stderr)).toMatchObject({
      error: { code: "KUBERNETES_UNREACHABLE", server: "https://127.0.0.1:1", context: "team-a" },
    });
    expect(json.stderr).toContain("LivySession other/x");
  });

  it("completes commands, flags and flag values", async () => {
    const words = async (...w: string[]) => (await livyctl(["__complete", ...w])).stdout.split("\n");
    const [verbs, flags, outputs, kinds, shells, files, offline] = await Promise.all([
      words("de"),
      words("get", "--all"),
      words("-o", ""),
      words("create", "x", "--kind", "py"),
      words("completion", ""),
      words("--kubeconfig", ""),
      // no cluster to ask for names: no candidates, not an error
      livyctl(["__complete", "--kubeconfig", down, "describe", ""]),
    ]);
    expect(verbs).toEqual(["describe", "delete", ":4", ""]);
    expect(flags).toEqual(["--all-namespaces", ":4", ""]);
    expect(outputs).toEqual(["text", "json", "yaml", "wide", "name", ":4", ""]);
    expect(kinds).toEqual(["pyspark", ":4", ""]);
    expect(shells).toEqual(["bash", "zsh", "fish", ":4", ""]);
    expect(files).toEqual([":0", ""]);
    expect(offline).toMatchObject({ code: 0, stdout: ":4\n" });
  });

  it("bash completion asks livyctl and fills COMPREPLY", async () => {
    const bin = join(dir, "bin");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "livyctl"), `#!/bin/sh\nexec "${process.execPath}" "${MAIN}" "$@"\n`, {
      mode: 0o755,
    });
    const script = [
      "source <(livyctl completion bash)",
      'COMP_WORDS=(livyctl des); COMP_CWORD=1; __livyctl_complete; echo "$COMPREPLY"',
      'COMP_WORDS=(livyctl -o y); COMP_CWORD=2; __livyctl_complete; echo "$COMPREPLY"',
      "complete -p livyctl",
    ].join("\n");
    const res = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn("bash", ["-c", script], {
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      });
      let stdout = "";
      child.stdout.on("data", (c: Buffer) => {
        stdout += c.toString();
      });
      child.on("exit", (code) => resolve({ code, stdout }));
    });
    expect(res).toMatchObject({
      code: 0,
      stdout: "describe\nyaml\ncomplete -F __livyctl_complete livyctl\n",
    });
  });

  it("follows a log whose window moves: prints only the new lines", () => {
    expect(newLines(["a", "b", "c"], ["b", "c", "d", "e"])).toEqual(["d", "e"]);
    expect(newLines(["a", "b"], ["a", "b"])).toEqual([]);
    expect(newLines(["x"], ["y", "z"])).toEqual(["y", "z"]);
    expect(newLines([], ["y"])).toEqual(["y"]);
  });

  it("renders LivySessions like kubectl get lvs, with the reason", () => {
    const now = new Date("2026-01-01T01:00:00Z");
    const ls = {
      metadata: { name: "ws", namespace: "team-a", creationTimestamp: "2026-01-01T00:59:19Z" },
      spec: { kind: "pyspark" as const },
      status: {
        conditions: [
          {
            type: "Ready",
            status: "False" as const,
            reason: "IdleTimeout",
            message: "torn down after 15m without statements",
            lastTransitionTime: "2026-01-01T00:59:30Z",
          },
          {
            type: "Idle",
            status: "True" as const,
            reason: "IdleTimeout",
            message: "",
            lastTransitionTime: "2026-01-01T00:59:30Z",
          },
        ],
      },
    };
    expect(renderLivySessions([ls as never], "text", { now })).toBe(
      "NAME  PHASE  READY  REASON       STATE  ENDPOINT  AGE\nws    Idle   False  IdleTimeout                   41s\n",
    );
    expect(renderLivySessions([ls as never], "name")).toBe("livysession.livy.dev/ws\n");
    expect(renderLivySessions([ls as never], "wide", { now })).toContain(
      "torn down after 15m without statements",
    );
  });
});
