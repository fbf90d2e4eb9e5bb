import { describe, expect, it } from "vitest";
import { DEFAULT_WARMUP_CODE, SESSION_KINDS, WARMUP_CODE_MAX, warmupCode } from "../../src/api/index.ts";
import { newScope, run } from "../standin/interpreter.ts";

// What the default warm-up must warm (bench/RESULTS.md section 17.5): the paths nearly every interactive
// DataFrame step takes, and enough distinct queries that Janino's own code is JIT-compiled.
describe("the default warm-up", () => {
  for (const kind of ["pyspark", "spark"] as const) {
    const code = DEFAULT_WARMUP_CODE[kind];
    it(`${kind}: a filter, a join, aggregations, a sort, a limit and a distinct, as several queries`, () => {
      for (const op of [
        ".where(",
        ".join(",
        ".groupBy(",
        ".agg(",
        ".count()",
        ".orderBy(",
        ".limit(",
        ".distinct()",
      ])
        expect(code, op).toContain(op);
      // several distinct queries, each ending in an action, so that Janino compiles a few dozen classes
      expect(code.match(/\.(collect|count)\(\)\s*$/gm)?.length ?? 0).toBeGreaterThanOrEqual(4);
      expect(code.length).toBeLessThanOrEqual(WARMUP_CODE_MAX);
    });
  }

  it("pyspark: runs lambdas in a Python worker and leaves no names in the user's namespace", () => {
    const code = DEFAULT_WARMUP_CODE.pyspark;
    expect(code).toMatch(/sc\.parallelize\(.*lambda/);
    for (const line of code.split("\n")) {
      expect(line, line).not.toMatch(/^\s*[A-Za-z_]\w*\s*=[^=]/); // no assignment
      expect(line, line).toMatch(/^spark\.|^sc\./); // one expression on fresh objects
    }
  });

  it("spark: one block, so the Scala REPL keeps no names of it", () => {
    const code = DEFAULT_WARMUP_CODE.spark;
    expect(code.startsWith("{\n")).toBe(true);
    expect(code.endsWith("\n}")).toBe(true);
    expect(code).not.toMatch(/^\s*(val|var|def)\s/m);
  });

  it("is what a spec without warmup.code runs, for every kind; none when warm-up is off", () => {
    for (const kind of SESSION_KINDS) {
      expect(warmupCode({ kind })).toBe(DEFAULT_WARMUP_CODE[kind]);
      expect(warmupCode({ kind, warmup: { enabled: true } })).toBe(DEFAULT_WARMUP_CODE[kind]);
      expect(warmupCode({ kind, warmup: { enabled: false } })).toBeUndefined();
    }
    expect(warmupCode({ kind: "pyspark", warmup: { code: "1" } })).toBe("1");
  });

  // The integration tests run the operator against the stand-in: its default warm-up must not fail there.
  it.each(SESSION_KINDS.filter((k) => k !== "sparkr"))(
    "%s: the stand-in runs it without an error",
    (kind) => {
      expect(run(DEFAULT_WARMUP_CODE[kind], kind, newScope(), 0).output.status).toBe("ok");
    },
  );
});
