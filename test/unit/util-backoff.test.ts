import { describe, expect, it } from "vitest";
import { backoffDelay, seededRandom } from "../../src/util/backoff.ts";

describe("backoffDelay", () => {
  it("grows by the factor up to the ceiling", () => {
    const p = { baseMs: 1_000, maxMs: 300_000 };
    expect([0, 1, 2, 3, 8, 9, 100].map((a) => backoffDelay(p, a))).toEqual([
      1_000, 2_000, 4_000, 8_000, 256_000, 300_000, 300_000,
    ]);
    expect(backoffDelay({ baseMs: 100, maxMs: 1_000, factor: 1.5 }, 2)).toBe(225);
  });
  it("draws the jittered part from [(1 - jitter) × d, d]", () => {
    const p = { baseMs: 1_000, maxMs: 60_000, jitter: 0.5 };
    expect(backoffDelay(p, 2, () => 0)).toBe(2_000);
    expect(backoffDelay(p, 2, () => 1)).toBe(4_000);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(p, 3);
      expect(d).toBeGreaterThanOrEqual(4_000);
      expect(d).toBeLessThanOrEqual(8_000);
    }
  });
  it("never overflows, whatever the attempt", () => {
    expect(backoffDelay({ baseMs: 5, maxMs: 1_000 }, 10_000)).toBe(1_000);
    expect(backoffDelay({ baseMs: 5, maxMs: 1_000 }, -3)).toBe(5);
  });
});

describe("seededRandom", () => {
  it("is stable per seed, spread across seeds", () => {
    expect(seededRandom("a")).toBe(seededRandom("a"));
    const values = Array.from({ length: 200 }, (_, i) => seededRandom(`ns/name/${i}`));
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...values)).toBeLessThan(1);
    expect(new Set(values.map((v) => Math.floor(v * 10))).size).toBe(10);
  });
});
