import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { run, type Value } from "../standin/interpreter.ts";
import { useStandin } from "./livy-fixtures.ts";

const fx = useStandin();

describe("stand-in interpreter", () => {
  const text = (code: string, vars = new Map<string, Value>()) => {
    const out = run(code, vars, 0).output;
    return out.status === "ok" ? out.data["text/plain"] : `${out.ename}: ${out.evalue}`;
  };

  it.each([
    ["1 + 1", "2"],
    ["2 ** 10 - 24", "1000"],
    ["7 // 2", "3"],
    ["-7 % 3", "2"],
    ["3 / 2", "1.5"],
    ["4 / 2", "2.0"],
    ["1.5 * 2", "3.0"],
    ["(1 + 2) * 3", "9"],
    ["'ab' + 'c'", "'abc'"],
    ["spark.range(1000).count()", "1000"],
    ['print("hi"); 1', "hi\n1"],
    ["import time; time.sleep(0)", ""],
    ["x = 2", ""],
    ["None", ""],
    ["df.show()", "df.show()"],
    ["1/0", "ZeroDivisionError: division by zero"],
    ["1 // 0", "ZeroDivisionError: integer division or modulo by zero"],
    ["1.0 / 0", "ZeroDivisionError: float division by zero"],
    ["'a' + 1", "TypeError: unsupported operand type(s) for +: 'str' and 'int'"],
    ["undefined_name", "NameError: name 'undefined_name' is not defined"],
    ['raise ValueError("boom")', "ValueError: boom"],
    ["raise KeyError", "KeyError: "],
  ])("%s → %s", (code, expected) => {
    expect(text(code)).toBe(expected);
  });

  it("keeps variables between statements of a session", () => {
    const vars = new Map<string, Value>();
    text("x = 20", vars);
    expect(text("x * 2 + 2", vars)).toBe("42");
  });

  it("takes sleeps as run time and Python's short traceback for errors", () => {
    expect(run("import time; time.sleep(1.5)", new Map(), 0).sleepMs).toBe(1500);
    expect(run("sleep 2", new Map(), 0).sleepMs).toBe(2000);
    expect(run("1/0", new Map(), 4).output).toEqual({
      status: "error",
      execution_count: 4,
      ename: "ZeroDivisionError",
      evalue: "division by zero",
      traceback: ["Traceback (most recent call last):\n", "ZeroDivisionError: division by zero\n"],
    });
  });
});

describe("stand-in server", () => {
  const get = async (path: string) => {
    const res = await fetch(fx.standin.url + path);
    return { status: res.status, body: (await res.json()) as unknown };
  };
  const post = async (path: string, body: unknown) => {
    const res = await fetch(fx.standin.url + path, { method: "POST", body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as unknown };
  };

  it("goes not_started → starting → idle with the configured delays", async () => {
    fx.standin.control.configure({ notStartedMs: 60, sessionStartupMs: 60 });
    const created = await post("/sessions", { kind: "pyspark" });
    expect(created).toMatchObject({ status: 201, body: { id: 0, state: "not_started" } });
    const seen: string[] = ["not_started"];
    const started = Date.now();
    while (seen.at(-1) !== "idle" && Date.now() - started < 2_000) {
      const { state } = (await get("/sessions/0/state")).body as { state: string };
      if (state !== seen.at(-1)) seen.push(state);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(seen).toEqual(["not_started", "starting", "idle"]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
  });

  it("finds sessions by name, pages the log like Livy and answers bad numbers with 400", async () => {
    await post("/sessions", { kind: "pyspark", name: "etl" });
    expect((await get("/sessions/etl")).body).toMatchObject({ id: 0, name: "etl" });
    expect(await post("/sessions", { name: "etl" })).toMatchObject({
      status: 400,
      body: "Duplicate session name: etl",
    });
    const all = (await get("/sessions/0/log")).body as { total: number; log: string[] };
    expect(await get("/sessions/0/log?size=1")).toMatchObject({
      body: { from: all.total - 1, log: all.log.slice(-1) },
    });
    expect(await get("/sessions/0/log?from=0&size=1")).toMatchObject({
      body: { from: 0, log: all.log.slice(0, 1) },
    });
    expect(await get("/sessions?from=x")).toEqual({ status: 400, body: { msg: 'For input string: "x"' } });
  });

  it("pages statements newest first with from and size", async () => {
    await post("/sessions", { kind: "pyspark" });
    await new Promise((r) => setTimeout(r, 40));
    for (const code of ["0", "1", "2", "3"]) await post("/sessions/0/statements", { code });
    const page = (await get("/sessions/0/statements?order=desc&from=1&size=2")).body as {
      total_statements: number;
      statements: { id: number }[];
    };
    expect(page.total_statements).toBe(4);
    expect(page.statements.map((s) => s.id)).toEqual([2, 1]);
    const asc = (await get("/sessions/0/statements?from=1&size=2")).body as { statements: { id: number }[] };
    expect(asc.statements.map((s) => s.id)).toEqual([1, 2]);
  });

  it("fails requests on command, then answers normally again", async () => {
    await post("/_standin/fail", { status: 502, count: 1 });
    expect((await get("/version")).status).toBe(502);
    expect((await get("/version")).status).toBe(200);
  });

  it("resets connections in `reset` mode of unreachable", async () => {
    fx.standin.control.unreachable(200, "reset");
    await expect(fetch(`${fx.standin.url}/version`)).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 250));
    expect((await get("/version")).status).toBe(200);
  });

  it("has an HTTP control API mirroring the in-process one", async () => {
    expect((await post("/_standin/config", { statementRunMs: 5 })).body).toMatchObject({ statementRunMs: 5 });
    expect(await post("/_standin/config", { nonsense: 1 })).toMatchObject({ status: 400 });
    await post("/sessions", { kind: "pyspark" });
    expect((await post("/_standin/sessions/0/kill", {})).body).toMatchObject({ state: "dead" });
    expect(await get("/sessions/0/statements")).toEqual({
      status: 400,
      body: { msg: "requirement failed: Session isn't active." },
    });
    const counters = (await get("/_standin/counters")).body as { routes: Record<string, number> };
    expect(counters.routes).toMatchObject({ "POST /sessions": 1, "GET /sessions/:id/statements": 1 });
    await post("/_standin/counters/reset", {});
    expect((await get("/_standin/counters")).body).toMatchObject({ total: 0 });
  });

  it("runs as a process that prints its URL as one JSON line", async () => {
    const child = spawn(process.execPath, [join(import.meta.dirname, "../standin/main.ts"), "--port", "0"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      const [chunk] = (await once(child.stdout, "data")) as [Buffer];
      const { url } = JSON.parse(chunk.toString()) as { url: string };
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(`${url}/version`);
      expect(await res.json()).toMatchObject({ version: "0.9.0-incubating" });
    } finally {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  });
});
