import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type BenchOutput, writeResult } from "../../bench/lib/report.ts";

const sample = { t: 0, load1: 1, load5: 1, load15: 1 } as unknown as BenchOutput["load"]["start"];
const output = (results: Record<string, unknown>): BenchOutput => ({
  name: "scale",
  command: "npm run bench -- scale",
  startedAt: "2026-11-28T15:20:50.123Z",
  finishedAt: "2026-11-28T15:35:00.000Z",
  durationS: 850,
  machine: {} as BenchOutput["machine"],
  load: { start: sample, end: sample, max1: 1, samples: [] },
  params: {},
  results,
  goals: [],
  tables: [],
  notes: [],
});

describe("bench result files", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("never overwrites a record: a second run of the same name is written beside it, named by its start", () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-results-"));
    dirs.push(dir);
    expect(writeResult(output({ run: 1 }), dir)).toBe(join(dir, "scale.json"));
    const second = output({ run: 2 });
    expect(writeResult(second, dir)).toBe(join(dir, "scale-20261128T152050.json"));
    expect(second.name).toBe("scale-20261128T152050");
    expect(readdirSync(dir).sort()).toEqual([
      "scale-20261128T152050.json",
      "scale-20261128T152050.md",
      "scale.json",
      "scale.md",
    ]);
    expect(JSON.parse(readFileSync(join(dir, "scale.json"), "utf8")).results).toEqual({ run: 1 });
    expect(JSON.parse(readFileSync(join(dir, "scale-20261128T152050.json"), "utf8")).results).toEqual({
      run: 2,
    });
  });
});
