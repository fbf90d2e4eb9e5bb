import { describe, expect, it } from "vitest";
import { SecretCache } from "../../src/operator/gather.ts";

describe("SecretCache", () => {
  const setup = (secret: { data: Record<string, string> } | null) => {
    let now = 0;
    const reads: string[] = [];
    let current = secret;
    const cache = new SecretCache(
      async (ns, name) => {
        reads.push(`${ns}/${name}`);
        return current;
      },
      () => now,
    );
    return {
      cache,
      reads,
      advance: (ms: number) => {
        now += ms;
      },
      set: (s: typeof secret) => {
        current = s;
      },
    };
  };

  it("reads a Secret once per TTL, however often it is asked for", async () => {
    const t = setup({ data: { token: "dA==" } });
    for (let i = 0; i < 50; i++) {
      await t.cache.get("ns", "s");
      t.advance(100);
    }
    expect(t.reads).toEqual(["ns/s"]);
    t.advance(SecretCache.FOUND_TTL_MS);
    await t.cache.get("ns", "s");
    expect(t.reads).toHaveLength(2);
  });

  it("asks again for a missing Secret sooner, and sees it once created", async () => {
    const t = setup(null);
    expect(await t.cache.get("ns", "s")).toBeNull();
    t.advance(1_000);
    expect(await t.cache.get("ns", "s")).toBeNull();
    expect(t.reads).toHaveLength(1);
    t.set({ data: { token: "dA==" } });
    t.advance(SecretCache.MISSING_TTL_MS);
    expect(await t.cache.get("ns", "s")).toEqual({ data: { token: "dA==" } });
    expect(t.reads).toHaveLength(2);
  });

  it("reads again at once after invalidate (Livy refused the credentials)", async () => {
    const t = setup({ data: { token: "dA==" } });
    await t.cache.get("ns", "s");
    t.cache.invalidate("ns", "s");
    await t.cache.get("ns", "s");
    expect(t.reads).toHaveLength(2);
  });

  it("forgets Secrets nobody asked for lately", async () => {
    const t = setup({ data: {} });
    for (let i = 0; i < 20; i++) await t.cache.get("ns", `s${i}`);
    expect(t.cache.size).toBe(20);
    t.advance(2 * 60_000);
    await t.cache.get("ns", "other");
    expect(t.cache.size).toBe(1);
  });

  it("reads a Secret again sooner when asked to (one that lacks a key, being waited for)", async () => {
    const t = setup({ data: {} });
    await t.cache.get("ns", "s");
    t.advance(SecretCache.MISSING_TTL_MS);
    await t.cache.get("ns", "s");
    expect(t.reads).toHaveLength(1);
    await t.cache.get("ns", "s", undefined, SecretCache.MISSING_TTL_MS);
    expect(t.reads).toHaveLength(2);
  });
});

describe("Gatherer.livy on a server several LivySessions share", () => {
  it("reads the newest statement of its own and of others' sessions, none of other LivySessions'", async () => {
    const { Gatherer } = await import("../../src/operator/gather.ts");
    const asked: number[] = [];
    const session = (id: number, name: string | null, state = "idle") => ({ id, name, state });
    const client = {
      getSession: async (id: number) => session(id, "ns.a.x1.0"),
      findSessionByName: async () => null,
      listSessions: async () => ({
        sessions: [
          session(1, "ns.a.x1.0"),
          session(2, "ns.b.x1.0"),
          session(3, "ns.c.y2.1.0123abcd"),
          session(4, "notebook"),
          session(5, null),
        ],
      }),
      listBatches: async () => ({ sessions: [] }),
      listStatements: async (id: number) => {
        asked.push(id);
        return { statements: [{ state: "available", started: id * 1000, completed: id * 1000 + 1 }] };
      },
    };
    const g = new Gatherer({
      kube: {} as never,
      caches: {} as never,
      config: { livyRequestTimeoutMs: 1000 } as never,
      livy: () => client as never,
    });
    const seen = await g.livy({
      url: "http://livy",
      sessionId: 1,
      activity: true,
      owner: { namespace: "ns", name: "a" },
    });
    expect(asked.sort()).toEqual([1, 4, 5]);
    expect(seen.activity).toEqual({ ok: true, value: { busy: false, latestMs: 5001 } });
  });
});

describe("Gatherer.livy: the session as last read", () => {
  it("takes the session's state from the activity's list, read after the session itself", async () => {
    const { Gatherer } = await import("../../src/operator/gather.ts");
    const code = "warm";
    // as right after a short warm-up's submission: the session read busy, then the warm-up done and the
    // session idle in the reads that follow
    const client = {
      getSession: async (id: number) => ({ id, name: "ns.a.x1.0", state: "busy" }),
      listSessions: async () => ({ sessions: [{ id: 1, name: "ns.a.x1.0", state: "idle" }] }),
      listBatches: async () => ({ sessions: [] }),
      listStatements: async () => ({
        statements: [{ id: 0, code, state: "available", output: { status: "ok" }, started: 1, completed: 2 }],
      }),
    };
    const g = new Gatherer({
      kube: {} as never,
      caches: {} as never,
      config: { livyRequestTimeoutMs: 1000 } as never,
      livy: () => client as never,
    });
    const q = { url: "http://livy", sessionId: 1, owner: { namespace: "ns", name: "a" }, warmup: { code } };
    const seen = await g.livy({ ...q, activity: true });
    expect(seen.session).toEqual({ ok: true, value: { id: 1, name: "ns.a.x1.0", state: "idle" } });
    expect(seen.activity).toEqual({ ok: true, value: { busy: false, latestMs: 2 } });
    expect(seen.warmup).toMatchObject({ ok: true, value: { id: 0, state: "available" } });
    // no list read: the session as read
    const alone = await g.livy({ ...q, activity: false });
    expect(alone.session).toMatchObject({ ok: true, value: { state: "busy" } });
  });
});
