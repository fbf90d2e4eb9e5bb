/**
 * The library's conveniences: a session created and disposed with `await using`, table results as typed
 * row objects, and the light package (packages/client) closed over undici and zod only.
 */
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  LivyProtocolError,
  SessionNotUsableError,
  type StatementResult,
  tableRows,
} from "../../src/livy/index.ts";
import { useStandin } from "./livy-fixtures.ts";

const fx = useStandin();
const ROOT = join(import.meta.dirname, "..", "..");

describe("client.startSession", () => {
  it("creates a session, waits until it is idle, and deletes it when the `await using` block ends", async () => {
    const client = fx.client();
    let id = -1;
    {
      await using session = await client.startSession({ kind: "pyspark" }, { timeoutMs: 5_000 });
      id = session.id;
      expect((await client.getSessionState(id)).state).toBe("idle");
      await expect(session.run("1 + 1")).resolves.toMatchObject({ text: "2" });
    }
    await expect(client.getSession(id)).rejects.toMatchObject({ code: "LIVY_SESSION_GONE" });
  });

  it("deletes it also when the block throws, and when it never becomes idle", async () => {
    const client = fx.client();
    let id = -1;
    await expect(
      (async () => {
        await using session = await client.startSession({ kind: "pyspark" });
        id = session.id;
        throw new Error("boom");
      })(),
    ).rejects.toThrow("boom");
    await expect(client.getSession(id)).rejects.toMatchObject({ code: "LIVY_SESSION_GONE" });

    fx.standin.control.configure({ sessionStartupMs: 60_000 });
    const before = (await client.listSessions()).sessions.length;
    await expect(client.startSession({ kind: "pyspark" }, { timeoutMs: 200 })).rejects.toMatchObject({
      code: "LIVY_TIMEOUT",
    });
    expect((await client.listSessions()).sessions.length).toBe(before);
  });

  it("rejects with the session's state when it dies while starting", async () => {
    fx.standin.control.configure({ sessionStartupMs: 500 });
    const client = fx.client();
    const starting = client.startSession({ kind: "pyspark" }, { timeoutMs: 5_000 });
    await new Promise((r) => setTimeout(r, 100));
    const [s] = (await client.listSessions()).sessions.slice(-1);
    fx.standin.control.killSession(s?.id ?? -1, "dead");
    await expect(starting).rejects.toBeInstanceOf(SessionNotUsableError);
  });
});

describe("typed rows", () => {
  const table = (columns: Array<{ name: string; type: string }>, rows: unknown[][]): StatementResult => ({
    kind: "table",
    columns,
    rows,
    sessionId: 0,
    statementId: 7,
    executionCount: 7,
    data: {},
    text: undefined,
    started: undefined,
    completed: undefined,
  });

  it("gives row objects keyed by column, dates as Date, checked and typed by a zod schema", () => {
    const result = table(
      [
        { name: "id", type: "long" },
        { name: "name", type: "string" },
        { name: "day", type: "date" },
      ],
      [
        [1, "a", "2026-01-02"],
        [2, null, "2026-01-03"],
      ],
    );
    const rows = tableRows(result);
    expect(rows).toEqual([
      { id: 1, name: "a", day: new Date("2026-01-02") },
      { id: 2, name: null, day: new Date("2026-01-03") },
    ]);
    const typed = tableRows(result, z.object({ id: z.number(), name: z.string().nullable(), day: z.date() }));
    const first: { id: number; name: string | null; day: Date } | undefined = typed[0];
    expect(first?.day.getUTCDate()).toBe(2);
    expect(() => tableRows(result, z.object({ id: z.string() }))).toThrow(
      /statement 7, row 0: id: Invalid input: expected string, received number/,
    );
    expect(() => tableRows({ ...result, kind: "text", text: "x" } as StatementResult)).toThrow(
      LivyProtocolError,
    );
  });

  it("session.sql runs Spark SQL and gives typed rows (stand-in)", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    const rows = await session.sql(
      "SELECT id, id * 2 AS twice FROM range(3)",
      z.object({ id: z.number(), twice: z.number() }),
    );
    expect(rows).toEqual([
      { id: 0, twice: 0 },
      { id: 1, twice: 2 },
      { id: 2, twice: 4 },
    ]);
    expect(await session.sql("SELECT 1 AS one")).toEqual([{ one: 1 }]);
  });
});

describe("the light package (packages/client)", () => {
  /** Relative imports reachable from a module, and the packages it imports or requires. */
  function closure(entry: string): { files: Set<string>; packages: Set<string> } {
    const files = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string) => {
      if (files.has(file)) return;
      files.add(file);
      const text = readFileSync(file, "utf8");
      // static imports, and packages loaded through createRequire (src/util/undici.ts)
      const specs = [
        ...text.matchAll(/^(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms),
        ...text.matchAll(/\brequire\("([^"]+)"\)/g),
      ];
      for (const m of specs) {
        const spec = m[1] ?? "";
        if (/^(?:import|export)\s+type\s/.test(m[0])) continue;
        if (spec.startsWith(".")) visit(resolve(dirname(file), spec));
        else if (!spec.startsWith("node:"))
          packages.add(
            spec.split("/")[0]?.startsWith("@")
              ? spec.split("/").slice(0, 2).join("/")
              : (spec.split("/")[0] ?? spec),
          );
      }
    };
    visit(entry);
    return { files, packages };
  }

  it("src/livy/index.ts reaches only the Livy client's modules, undici and zod", () => {
    const { files, packages } = closure(join(ROOT, "src", "livy", "index.ts"));
    const rel = [...files].map((f) => relative(join(ROOT, "src"), f)).sort();
    expect(rel.every((f) => f.startsWith("livy/") || f === "util/backoff.ts" || f === "util/undici.ts")).toBe(
      true,
    );
    expect(rel).not.toContain("livy/kube.ts");
    expect([...packages].sort()).toEqual(["undici", "zod"]);
  });

  it("declares exactly those dependencies, at the root package's ranges and version", () => {
    const rootPkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    const pkg = JSON.parse(readFileSync(join(ROOT, "packages", "client", "package.json"), "utf8"));
    expect(pkg.version).toBe(rootPkg.version);
    expect(pkg.dependencies).toEqual({
      undici: rootPkg.dependencies.undici,
      zod: rootPkg.dependencies.zod,
    });
    expect(pkg.exports["."].default).toBe("./dist/livy/index.js");
  });
});
