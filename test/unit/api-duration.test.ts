import { describe, expect, it } from "vitest";
import { durationNanos, formatDuration, parseDuration } from "../../src/api/duration.ts";

describe("parseDuration", () => {
  it.each([
    ["0", 0],
    ["0s", 0],
    ["90s", 90_000],
    ["15m", 900_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    ["1h1h", 7_200_000],
    ["500ms", 500],
    ["1.5ms", 1.5],
    ["2m0.001s", 120_001],
    ["167h59m60s", 168 * 3_600_000],
  ])("%s is %d ms", (s, ms) => {
    expect(parseDuration(s)).toBe(ms);
  });

  it.each([
    "",
    "15",
    "00",
    "-1m",
    "+1m",
    "1d",
    "15 m",
    " 15m",
    "1.m",
    ".5h",
    "1.0001s",
    "1234567h",
    "1us",
    "1ns",
    "1hm",
    "1h1",
    "1H",
    "1m".repeat(17),
  ])("refuses %j", (s) => {
    expect(durationNanos(s)).toBeNull();
    expect(() => parseDuration(s)).toThrow(/invalid duration/);
  });

  it("counts nanoseconds exactly, like Go's int64 arithmetic", () => {
    expect(durationNanos("999999.999h")).toBe(3_599_999_996_400_000_000n);
    expect(durationNanos("1.001ms")).toBe(1_001_000n);
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0s"],
    [500, "500ms"],
    [1500, "1.5s"],
    [90_000, "1m30s"],
    [900_000, "15m"],
    [3_600_000, "1h"],
    [5_400_000, "1h30m"],
    [5_401_000, "1h30m1s"],
  ])("%d ms is %s", (ms, s) => {
    expect(formatDuration(ms)).toBe(s);
  });

  it("round-trips through parseDuration", () => {
    for (const ms of [1, 999, 1000, 61_000, 3_599_999, 3_600_000, 86_400_000, 604_800_000]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });

  it("refuses negative and non-finite values", () => {
    expect(() => formatDuration(-1)).toThrow();
    expect(() => formatDuration(Number.NaN)).toThrow();
  });
});
