import { describe, expect, it } from "vitest";
import { sameStatus } from "../../src/operator/execute.ts";

/** A status as decide() builds it: fields in the order it sets them. */
const built = {
  phase: "Starting",
  observedGeneration: 1,
  startTime: "2026-11-28T10:30:03.696Z",
  restarts: 0,
  conditions: [
    {
      type: "Ready",
      status: "False",
      reason: "Starting",
      message: "Livy session 40 is starting",
      lastTransitionTime: "2026-11-28T10:30:03.696Z",
    },
  ],
  livySessionId: 40,
  message: undefined,
};

/** The same status as the API server returns it: every object's keys sorted, undefined fields absent. */
const stored = {
  conditions: [
    {
      lastTransitionTime: "2026-11-28T10:30:03.696Z",
      message: "Livy session 40 is starting",
      reason: "Starting",
      status: "False",
      type: "Ready",
    },
  ],
  livySessionId: 40,
  observedGeneration: 1,
  phase: "Starting",
  restarts: 0,
  startTime: "2026-11-28T10:30:03.696Z",
};

describe("sameStatus", () => {
  it("is true for the same fields in another key order (the API server sorts them)", () => {
    expect(sameStatus(stored, built)).toBe(true);
    expect(sameStatus(stored, { ...built, message: null })).toBe(true);
  });

  it("sees a changed, added or removed field, at any depth", () => {
    const cond = built.conditions[0] as (typeof built.conditions)[0];
    expect(
      sameStatus(stored, { ...built, conditions: [{ ...cond, message: "Livy session 40 is idle" }] }),
    ).toBe(false);
    expect(sameStatus(stored, { ...built, livySessionState: "starting" })).toBe(false);
    const { livySessionId: _gone, ...without } = built;
    expect(sameStatus(stored, without)).toBe(false);
    expect(sameStatus(stored, { ...built, conditions: [cond, cond] })).toBe(false);
  });
});
