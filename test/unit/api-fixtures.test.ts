import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { parseLivySession } from "../../src/api/livysession.ts";
import { manifests } from "../fixtures/manifests.ts";

const invalid = manifests("invalid");
const valid = manifests("valid");

describe("manifest corpus", () => {
  it("has at least 15 invalid manifests, each saying what the API server must answer", () => {
    expect(invalid.length).toBeGreaterThanOrEqual(15);
    for (const m of invalid) {
      expect(m.expect.length, m.file).toBeGreaterThan(0);
      expect(m.zodPath, m.file).toBeDefined();
    }
  });

  it.each(invalid.map((m) => [m.file, m] as const))(
    "zod refuses %s at the field the API server names",
    (_f, m) => {
      const r = parseLivySession(m.object);
      expect(r.success).toBe(false);
      if (!r.success) {
        expect(r.message).toContain(`${m.zodPath}: `);
        // The API server names the same field: its error starts with that path too.
        expect(m.expect.some((e) => e.startsWith(m.zodPath ?? "?"))).toBe(true);
      }
    },
  );

  it.each(valid.map((m) => [m.file, m] as const))("zod accepts %s", (_f, m) => {
    const r = parseLivySession(m.object);
    expect(r.success ? "" : r.message).toBe("");
  });
});

describe("examples/", () => {
  const dir = join(import.meta.dirname, "..", "..", "examples");
  const docs = readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(dir, f), "utf8"))
        .map((d) => d.toJS() as { kind?: string } | null)
        .filter((o) => o?.kind === "LivySession")
        .map((o) => [f, o] as const),
    );

  it.each(docs)("%s is a valid LivySession", (_f, o) => {
    const r = parseLivySession(o);
    expect(r.success ? "" : r.message).toBe("");
  });
});
