import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ALL_REASONS } from "../../src/api/index.ts";

/** The operator names reasons only as `Reason.X` (string literals would escape the compiler's check). */
const dir = join(import.meta.dirname, "..", "..", "src", "operator");
const sources = readdirSync(dir)
  .filter((f) => f.endsWith(".ts"))
  .map((f) => readFileSync(join(dir, f), "utf8"))
  .join("\n");
const emitted = new Set([...sources.matchAll(/\bReason\.([A-Za-z]+)/g)].map((m) => m[1]));

describe("the reasons of the status contract", () => {
  it.each(ALL_REASONS)("%s is emitted by the operator", (reason) => {
    expect(emitted.has(reason)).toBe(true);
  });

  it("the operator emits no reason the contract does not declare", () => {
    expect([...emitted].filter((r) => !(ALL_REASONS as string[]).includes(r ?? ""))).toEqual([]);
  });
});
