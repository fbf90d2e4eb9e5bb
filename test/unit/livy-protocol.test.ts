import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  errorMessage,
  isSessionStarting,
  isSessionTerminal,
  isSessionUsable,
  isStatementDone,
  isTransient,
  LivyHttpError,
  LivyProtocolError,
  LivyTimeoutError,
  LivyUnreachableError,
  SESSION_STATES,
  SessionGoneError,
  type Statement,
  StatementError,
  sessionSchema,
  statementResult,
  statementSchema,
} from "../../src/livy/index.ts";
import { backoffDelay } from "../../src/livy/wait.ts";

const done = (output: unknown, extra: Partial<Statement> = {}): Statement =>
  statementSchema.parse({
    id: 7,
    code: "x",
    state: "available",
    output,
    progress: 1,
    started: 10,
    completed: 20,
    ...extra,
  });

describe("statementResult", () => {
  const ok = (data: Record<string, unknown>) => done({ status: "ok", execution_count: 7, data });

  it.each([
    ["text", { "text/plain": "2" }, { kind: "text", text: "2" }],
    ["empty text", { "text/plain": "" }, { kind: "text", text: "" }],
    ["no data at all", {}, { kind: "text", text: "" }],
    ["json", { "application/json": { a: [1, 2] } }, { kind: "json", json: { a: [1, 2] } }],
    [
      "Livy table magic",
      {
        "application/vnd.livy.table.v1+json": {
          headers: [
            { name: "a", type: "INT_TYPE" },
            { name: "b", type: "STRING_TYPE" },
          ],
          data: [
            [1, "x"],
            [2, "y"],
          ],
        },
      },
      {
        kind: "table",
        columns: [
          { name: "a", type: "INT_TYPE" },
          { name: "b", type: "STRING_TYPE" },
        ],
        rows: [
          [1, "x"],
          [2, "y"],
        ],
      },
    ],
    [
      "Spark SQL json (schema + data) is a table",
      {
        "application/json": {
          schema: {
            type: "struct",
            fields: [
              { name: "n", type: "long", nullable: false, metadata: {} },
              { name: "s", type: { type: "array", elementType: "string" }, nullable: true, metadata: {} },
            ],
          },
          data: [[1, ["a"]]],
        },
      },
      {
        kind: "table",
        columns: [
          { name: "n", type: "long" },
          { name: "s", type: '{"type":"array","elementType":"string"}' },
        ],
        rows: [[1, ["a"]]],
      },
    ],
    [
      "image beside its text",
      { "image/png": "iVBORw0KGgo=", "text/plain": "<Figure>" },
      { kind: "image", mimeType: "image/png", base64: "iVBORw0KGgo=", text: "<Figure>" },
    ],
    [
      "an unknown MIME type is kept as json",
      { "text/html": "<b>x</b>" },
      { kind: "json", json: { "text/html": "<b>x</b>" } },
    ],
  ])("%s", (_name, data, expected) => {
    const result = statementResult(3, ok(data));
    expect(result).toMatchObject({ ...expected, sessionId: 3, statementId: 7, executionCount: 7, data });
    expect(result.started).toBe(10);
    expect(result.completed).toBe(20);
  });

  it("throws StatementError with Livy's ename, evalue and traceback", () => {
    const tb = ["Traceback (most recent call last):\n", "ZeroDivisionError: division by zero\n"];
    const err = (() => {
      try {
        statementResult(
          3,
          done({
            status: "error",
            execution_count: 7,
            ename: "ZeroDivisionError",
            evalue: "division by zero",
            traceback: tb,
          }),
        );
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(StatementError);
    expect(err).toMatchObject({
      code: "LIVY_STATEMENT_ERROR",
      sessionId: 3,
      statementId: 7,
      ename: "ZeroDivisionError",
      evalue: "division by zero",
      traceback: tb,
      message: "ZeroDivisionError: division by zero",
    });
  });

  it("refuses a finished statement without output, or an unreadable table", () => {
    expect(() => statementResult(1, done(null))).toThrow(LivyProtocolError);
    expect(() =>
      statementResult(1, ok({ "application/vnd.livy.table.v1+json": { headers: "x", data: [] } })),
    ).toThrow(LivyProtocolError);
  });

  it("takes the richest MIME type whatever else is present", () => {
    fc.assert(
      fc.property(fc.string(), fc.jsonValue(), (text, json) => {
        const r = statementResult(1, ok({ "text/plain": text, "application/json": json }));
        const isSqlTable =
          typeof json === "object" &&
          json !== null &&
          !Array.isArray(json) &&
          "schema" in json &&
          "data" in json;
        return isSqlTable || (r.kind === "json" && r.text === text);
      }),
    );
  });
});

describe("schemas are tolerant of other Livy versions", () => {
  it("reads a Livy 0.7 session (few fields) and keeps fields a newer Livy adds", () => {
    const s = sessionSchema.parse({
      id: 1,
      appId: null,
      owner: null,
      proxyUser: null,
      state: "idle",
      kind: "pyspark",
      appInfo: { driverLogUrl: null, sparkUiUrl: null },
      log: [],
      newField: { x: 1 },
    });
    expect(s.state).toBe("idle");
    expect((s as Record<string, unknown>).newField).toEqual({ x: 1 });
  });

  it("keeps an unknown state instead of failing", () => {
    expect(sessionSchema.parse({ id: 1, state: "hibernating" }).state).toBe("hibernating");
    expect(statementSchema.parse({ id: 0, state: "queued_remotely", output: null }).state).toBe(
      "queued_remotely",
    );
  });

  it("rejects what is not a session at all", () => {
    expect(sessionSchema.safeParse({ state: "idle" }).success).toBe(false);
    expect(sessionSchema.safeParse({ id: "1", state: "idle" }).success).toBe(false);
  });
});

describe("state predicates", () => {
  it.each(SESSION_STATES.map((s) => [s]))("%s is exactly one of usable, starting, terminal", (state) => {
    const kinds = [isSessionUsable(state), isSessionStarting(state), isSessionTerminal(state)].filter(
      Boolean,
    );
    expect(kinds).toHaveLength(1);
  });

  it.each([
    ["waiting", false],
    ["running", false],
    ["cancelling", false],
    ["available", true],
    ["cancelled", true],
    ["error", true],
  ])("statement %s done: %s", (state, expected) => {
    expect(isStatementDone(state)).toBe(expected);
  });
});

describe("errorMessage", () => {
  it.each([
    ['{"msg":"Session \'7\' not found."}', "Session '7' not found."],
    [
      '"java.lang.IllegalStateException: Session is in state starting"',
      "java.lang.IllegalStateException: Session is in state starting",
    ],
    [
      "<html><head><title>Error 400 Missing Required Header for CSRF protection.</title></head></html>",
      "Error 400 Missing Required Header for CSRF protection.",
    ],
    ["plain text", "plain text"],
    ['{"other":1}', '{"other":1}'],
  ])("%s", (body, expected) => {
    expect(errorMessage(body)).toBe(expected);
  });
});

describe("isTransient", () => {
  const http = (status: number) => new LivyHttpError({ status, msg: "", method: "GET", path: "/" });
  it.each([
    ["unreachable", new LivyUnreachableError({ url: "u", reason: "ECONNREFUSED", requestSent: false }), true],
    ["timeout", new LivyTimeoutError("x", 1), true],
    ["502", http(502), true],
    ["429", http(429), true],
    ["400", http(400), false],
    ["404 session gone", new SessionGoneError({ status: 404, msg: "", method: "GET", path: "/" }), false],
    [
      "statement error",
      new StatementError({ sessionId: 0, statementId: 0, ename: "E", evalue: "", traceback: [] }),
      false,
    ],
  ])("%s: %s", (_name, err, expected) => {
    expect(isTransient(err)).toBe(expected);
  });
});

describe("backoffDelay", () => {
  it("grows by the factor, stays within [50%, 100%] of the step and never exceeds the ceiling", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 30 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (attempt, r) => {
          const policy = { minDelayMs: 10, maxDelayMs: 1_000, factor: 2 };
          const d = backoffDelay(policy, attempt, () => r);
          const step = Math.min(1_000, 10 * 2 ** attempt);
          return d >= Math.floor(step / 2) && d <= step;
        },
      ),
    );
  });
});
