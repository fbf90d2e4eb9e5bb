import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { newScope, run } from "../standin/interpreter.ts";
import { useStandin } from "./livy-fixtures.ts";

const fx = useStandin();

describe("stand-in interpreter", () => {
  const output = (code: string, kind = "pyspark", scope = newScope()) => run(code, kind, scope, 0).output;
  const text = (code: string, kind = "pyspark", scope = newScope()) => {
    const out = output(code, kind, scope);
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
    ['"it\'s"', `"it's"`],
    ["[1, 'a', None, True]", "[1, 'a', None, True]"],
    ["(1,)", "(1,)"],
    ["{'a': [1, 2], 'b': None}", "{'a': [1, 2], 'b': None}"],
    ["spark.range(1000).count()", "1000"],
    ['print("hello")\nprint("world")', "hello\nworld"],
    ['print("hi"); 1', "hi\n1"],
    ["import time; time.sleep(0)", ""],
    ["x = 5", ""],
    ["None", ""],
    ["df.show()", "df.show()"],
    ["1/0", "ZeroDivisionError: division by zero"],
    ["1 // 0", "ZeroDivisionError: integer division or modulo by zero"],
    ["1.0 / 0", "ZeroDivisionError: float division by zero"],
    ["'a' + 1", 'TypeError: can only concatenate str (not "int") to str'],
    ["1 + 'a'", "TypeError: unsupported operand type(s) for +: 'int' and 'str'"],
    ["undefined_name", "NameError: name 'undefined_name' is not defined"],
    ['raise ValueError("boom")', "ValueError: boom"],
    ["raise KeyError", "KeyError: "],
    ["%nope x", "UnknownMagic: unknown magic command 'nope'"],
  ])("pyspark %s → %s", (code, expected) => {
    expect(text(code)).toBe(expected);
  });

  it.each([
    ["spark.range(3).count()", "res0: Long = 3\n"],
    ["1 + 1", "res0: Int = 2\n"],
    ["7 / 2", "res0: Int = 3\n"],
    ["val x = 5", "x: Int = 5\n"],
    ["1/0", "Error: java.lang.ArithmeticException: / by zero"],
    ["val x: Int = ", "Error: incomplete statement"],
  ])("spark %s → %s", (code, expected) => {
    expect(text(code, "spark")).toBe(expected);
  });

  it("numbers Scala results per session", () => {
    const scope = newScope();
    expect(text("1", "spark", scope)).toBe("res0: Int = 1\n");
    expect(text("2", "spark", scope)).toBe("res1: Int = 2\n");
  });

  it("answers SQL with Spark's schema and rows", () => {
    expect(output("SELECT 1 AS one, 'x' AS s", "sql")).toMatchObject({
      status: "ok",
      data: {
        "application/json": {
          schema: {
            type: "struct",
            fields: [
              { name: "one", type: "integer", nullable: false, metadata: {} },
              { name: "s", type: "string", nullable: false, metadata: {} },
            ],
          },
          data: [[1, "x"]],
        },
      },
    });
    expect(output("SELECT id, id * 2 AS twice FROM range(3)", "sql")).toMatchObject({
      data: {
        "application/json": {
          data: [
            [0, 0],
            [1, 2],
            [2, 4],
          ],
        },
      },
    });
    expect(output("SELECT * FROM no_such_table", "sql")).toMatchObject({
      status: "error",
      ename: "Error",
      evalue: expect.stringContaining("[TABLE_OR_VIEW_NOT_FOUND]"),
    });
  });

  it("keeps variables between statements of a session, and reads them with %json and %table", () => {
    const scope = newScope();
    expect(text("x = 20", "pyspark", scope)).toBe("");
    expect(text("x * 2 + 2", "pyspark", scope)).toBe("42");
    expect(output("d = {'a': [1, 2], 'b': None}\n%json d", "pyspark", scope)).toMatchObject({
      data: { "application/json": { a: [1, 2], b: null } },
    });
    expect(
      output("rows = [{'n': 1, 's': 'x'}, {'n': 2, 's': None}]\n%table rows", "pyspark", scope),
    ).toMatchObject({
      data: {
        "application/vnd.livy.table.v1+json": {
          headers: [
            { name: "n", type: "INT_TYPE" },
            { name: "s", type: "STRING_TYPE" },
          ],
          data: [
            [1, "x"],
            [2, null],
          ],
        },
      },
    });
  });

  it("reproduces Livy's answer to a magic on a missing variable (an error nested in ok data)", () => {
    // Recorded from real Livy 0.9 by test/testbed/livy-smoke.ts.
    expect(output("%json {'a': [1, 2], 'b': None}")).toEqual({
      status: "ok",
      execution_count: 0,
      data: {
        msg_type: "execute_reply",
        content: {
          ename: "KeyError",
          evalue: `"{'a': [1, 2], 'b': None}"`,
          traceback: [`KeyError: "{'a': [1, 2], 'b': None}"\n`],
          status: "error",
        },
      },
    });
  });

  it("takes sleeps as run time and Python's short traceback for errors", () => {
    expect(run("import time; time.sleep(1.5)", "pyspark", newScope(), 0).sleepMs).toBe(1500);
    expect(run("sleep 2", "pyspark", newScope(), 0).sleepMs).toBe(2000);
    expect(run("1/0", "pyspark", newScope(), 4).output).toEqual({
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
    // Phases long enough that a poll lands in each even on a loaded machine.
    fx.standin.control.configure({ notStartedMs: 300, sessionStartupMs: 300 });
    const started = Date.now();
    const created = await post("/sessions", { kind: "pyspark" });
    expect(created).toMatchObject({ status: 201, body: { id: 0, state: "not_started" } });
    const seen: string[] = ["not_started"];
    while (seen.at(-1) !== "idle" && Date.now() - started < 5_000) {
      const { state } = (await get("/sessions/0/state")).body as { state: string };
      if (state !== seen.at(-1)) seen.push(state);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(seen).toEqual(["not_started", "starting", "idle"]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
  });

  it("finds sessions by name, pages the log like Livy and answers bad numbers with 400", async () => {
    // Still starting throughout: becoming idle would add a log line between the reads.
    fx.standin.control.configure({ sessionStartupMs: 600_000 });
    await post("/sessions", { kind: "pyspark", name: "etl" });
    expect((await get("/sessions/etl")).body).toMatchObject({ id: 0, name: "etl" });
    expect(await post("/sessions", { name: "etl" })).toMatchObject({
      status: 400,
      body: { msg: "Rejected, Reason: Duplicate session name: Some(etl) for session 1" },
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

  it("answers bad requests with the bodies real Livy 0.9 gave (recorded by test/testbed/livy-smoke.ts)", async () => {
    const raw = async (path: string, body: string) => {
      const res = await fetch(fx.standin.url + path, { method: "POST", body });
      return { status: res.status, body: (await res.json()) as unknown };
    };
    expect(await raw("/sessions", '{"kind":"pyspark","bogus":1}')).toEqual({
      status: 400,
      body: 'Unrecognized field "bogus" (class org.apache.livy.server.interactive.CreateInteractiveRequest), not marked as ignorable (17 known properties: "executorCores", "conf", "driverMemory", "name", "driverCores", "idleTimeout", "pyFiles", "archives", "kind", "files", "jars", "proxyUser", "numExecutors", "heartbeatTimeoutInSecond", "ttl", "queue", "executorMemory"])\n at [Source: (org.eclipse.jetty.server.HttpInputOverHTTP); line: 1, column: 28] (through reference chain: org.apache.livy.server.interactive.CreateInteractiveRequest["bogus"])',
    });
    expect(await raw("/sessions", '{"kind":"cobol"}')).toEqual({
      status: 400,
      body: 'Invalid kind: cobol (through reference chain: org.apache.livy.server.interactive.CreateInteractiveRequest["kind"])',
    });
    expect(await raw("/sessions", "{not json")).toEqual({
      status: 400,
      body: "Cannot construct instance of `org.apache.livy.server.interactive.CreateInteractiveRequest` (although at least one Creator exists): no String-argument constructor/factory method to deserialize from String value ('{not json')\n at [Source: (org.eclipse.jetty.server.HttpInputOverHTTP); line: 1, column: 1]",
    });
    // a session that stays starting however slow the machine is, then made idle by the control API
    fx.standin.control.configure({ sessionStartupMs: 600_000 });
    const session = (await raw("/sessions", '{"kind":"pyspark"}')).body as { id: number };
    expect(await raw(`/sessions/${session.id}/statements`, '{"code":"1"}')).toEqual({
      status: 500,
      body: "java.lang.IllegalStateException: Session is in state starting",
    });
    fx.standin.control.setSessionState(session.id, "idle");
    expect(await raw(`/sessions/${session.id}/statements`, '{"code":"1","bogus":true}')).toEqual({
      status: 400,
      body: 'Unrecognized field "bogus" (class org.apache.livy.ExecuteRequest), not marked as ignorable (3 known properties: "msg_type", "kind", "code"])\n at [Source: (org.eclipse.jetty.server.HttpInputOverHTTP); line: 1, column: 26] (through reference chain: org.apache.livy.ExecuteRequest["bogus"])',
    });
    expect(await raw(`/sessions/${session.id}/statements/999/cancel`, "")).toEqual({
      status: 200,
      body: { msg: "canceled" },
    });
    expect(await get(`/sessions/${session.id}/statements/999`)).toEqual({
      status: 404,
      body: "Statement not found",
    });
  });

  it("in blockingSleep mode cancels a Python sleep the way Livy does: cancelling until the sleep ends", async () => {
    fx.standin.control.configure({ blockingSleep: true });
    await post("/sessions", { kind: "pyspark" });
    fx.standin.control.setSessionState(0, "idle");
    // a sleep long enough to still be running after the 50 ms waits below on a loaded machine
    await post("/sessions/0/statements", { code: "import time; time.sleep(3)" });
    await post("/sessions/0/statements", { code: "2 + 2" });
    await new Promise((r) => setTimeout(r, 50));
    expect(await post("/sessions/0/statements/0/cancel", {})).toEqual({
      status: 200,
      body: { msg: "canceled" },
    });
    await new Promise((r) => setTimeout(r, 50));
    expect((await get("/sessions/0/statements/0")).body).toMatchObject({ state: "cancelling", output: null });
    expect((await get("/sessions/0/statements/1")).body).toMatchObject({ state: "waiting" });
    const deadline = Date.now() + 15_000;
    while (((await get("/sessions/0/statements/0")).body as { state: string }).state === "cancelling") {
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await get("/sessions/0/statements/0")).body).toMatchObject({
      state: "cancelled",
      output: { status: "ok", data: { "text/plain": "" } },
      progress: 1,
    });
    expect((await get("/sessions/0/statements/1")).body).toMatchObject({ state: "available" });
  });

  it("pages statements newest first with from and size", async () => {
    await post("/sessions", { kind: "pyspark" });
    fx.standin.control.setSessionState(0, "idle");
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
    // a Node start: well over the default 20 s at load 60 (the stand-in imports TypeScript sources)
  }, 180_000);
});
