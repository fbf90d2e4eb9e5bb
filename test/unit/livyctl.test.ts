import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EXIT, exitCodeOf, renderTable } from "../../src/cli/render.ts";
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

// Each case starts Node processes, which takes a while on a loaded machine.
describe("livyctl", { timeout: 60_000 }, () => {
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
    expect((await livyctl(["list"])).stdout).toMatch(
      new RegExp(`^ID\\s+NAME\\s+KIND\\s+STATE.*\\n${id}\\s+pyspark\\s+idle`, "s"),
    );
    expect((await livyctl(["statements", id])).stdout).toMatch(/0\s+available\s+100%.*1 \+ 1/);
    expect(JSON.parse((await livyctl(["-o", "json", "get", id, "0"])).stdout)).toMatchObject({
      id: 0,
      output: { data: { "text/plain": "2" } },
    });
    expect((await livyctl(["logs", id, "-n", "1"])).stdout).toContain("Spark context started");
    const handle = await fx.client().session(Number(id)).submit("sleep 10");
    expect(await livyctl(["cancel", id, String(handle.id)])).toMatchObject({ code: 0, stdout: "canceled\n" });
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
