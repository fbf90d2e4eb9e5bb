import { describe, expect, it } from "vitest";
import {
  amountsOf,
  budgetCapacity,
  claimedBy,
  isFree,
  POOL_NAME_MAX,
  type PooledServer,
  parseQuantity,
  pickServer,
  planRefill,
  pooledServerId,
  templateKey,
} from "../../src/operator/pool.ts";

const T0 = Date.parse("2026-03-01T12:00:00.000Z");
const server = (id: string, extra: Partial<PooledServer> = {}): PooledServer => ({
  id,
  createdMs: T0,
  deleting: false,
  state: "warm",
  livySessionId: 1,
  ...extra,
});

describe("templateKey: which LivySessions a pool serves", () => {
  const base = {
    kind: "pyspark",
    server: { resources: { requests: { cpu: "1" } } },
    session: { driverMemory: "1g" },
  };

  it("is equal for the same kind, server, session, warm-up and auth, whatever the key order", () => {
    const reordered = {
      session: { driverMemory: "1g" },
      server: { resources: { requests: { cpu: "1" } } },
      kind: "pyspark",
    };
    expect(templateKey(reordered)).toBe(templateKey(base));
  });

  it("differs when anything the server or its Livy session is built from differs", () => {
    const k = templateKey(base);
    expect(templateKey({ ...base, kind: "spark" })).not.toBe(k);
    expect(templateKey({ ...base, server: { image: "other" } })).not.toBe(k);
    expect(templateKey({ ...base, session: { driverMemory: "2g" } })).not.toBe(k);
    expect(templateKey({ ...base, warmup: { enabled: false } })).not.toBe(k);
    expect(templateKey({ ...base, warmup: { code: "1" } })).not.toBe(k);
    expect(templateKey({ ...base, auth: { type: "Basic", secretName: "s" } })).not.toBe(k);
  });

  it("reads unset and empty alike, and the default warm-up spelled out alike", () => {
    expect(templateKey({ kind: "pyspark", server: {}, session: {} })).toBe(templateKey({ kind: "pyspark" }));
    expect(templateKey({ kind: "pyspark", warmup: { enabled: true } })).toBe(
      templateKey({ kind: "pyspark" }),
    );
    expect(templateKey({ kind: "pyspark", warmup: { enabled: false, code: "x" } })).toBe(
      templateKey({ kind: "pyspark", warmup: { enabled: false } }),
    );
  });
});

describe("pickServer: which pooled server a LivySession takes", () => {
  it("takes only a free, warm server", () => {
    const servers = [
      server("a", { state: "starting" }),
      server("b", { claimedBy: "uid-x" }),
      server("c", { deleting: true }),
      server("d", { state: "failed" }),
      server("e"),
    ];
    expect(pickServer(servers, "uid-1")?.id).toBe("e");
    expect(pickServer(servers.slice(0, 4), "uid-1")).toBeUndefined();
    expect(pickServer([], "uid-1")).toBeUndefined();
  });

  it("is deterministic for a claimant, and spreads claimants over the warm servers", () => {
    const servers = ["a", "b", "c", "d"].map((id) => server(id));
    expect(pickServer(servers, "uid-1")?.id).toBe(pickServer([...servers].reverse(), "uid-1")?.id);
    const picked = new Set(Array.from({ length: 40 }, (_, i) => pickServer(servers, `uid-${i}`)?.id));
    expect(picked.size).toBeGreaterThan(2);
  });

  it("finds the server already handed to a claimant (an interrupted hand-over)", () => {
    const servers = [
      server("a"),
      server("b", { claimedBy: "uid-1" }),
      server("c", { claimedBy: "uid-2", deleting: true }),
    ];
    expect(claimedBy(servers, "uid-1")?.id).toBe("b");
    expect(claimedBy(servers, "uid-2")).toBeUndefined();
    expect(isFree(servers[1] as PooledServer)).toBe(false);
  });
});

describe("parseQuantity and the budget", () => {
  it.each([
    ["500m", 0.5],
    ["2", 2],
    [3, 3],
    ["1.5", 1.5],
    ["2Gi", 2 * 2 ** 30],
    ["512Mi", 512 * 2 ** 20],
    ["1G", 1e9],
    ["1e3", 1000],
    ["100k", 1e5],
    [".5", 0.5],
  ] as const)("%s", (q, n) => {
    expect(parseQuantity(q)).toBeCloseTo(n, 6);
  });

  it("refuses what is no quantity", () => {
    for (const q of ["", "abc", "1.2.3", "-1", "2GB"]) expect(parseQuantity(q)).toBeNaN();
  });

  it("holds as many servers as the tightest budgeted resource allows", () => {
    const each = amountsOf({ cpu: "500m", memory: "1Gi" });
    expect(budgetCapacity(amountsOf({ cpu: "2", memory: "3Gi" }), each)).toBe(3);
    expect(budgetCapacity(amountsOf({ cpu: "1999m" }), each)).toBe(3);
    expect(budgetCapacity(amountsOf({ cpu: "1500m" }), each)).toBe(3);
    expect(budgetCapacity(amountsOf({ memory: "512Mi" }), each)).toBe(0);
    expect(budgetCapacity(undefined, each)).toBe(Number.POSITIVE_INFINITY);
    // a resource the server does not request does not limit
    expect(budgetCapacity(amountsOf({ "nvidia.com/gpu": "1" }), each)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("planRefill: when a pool starts and removes servers", () => {
  const perServer = amountsOf({ cpu: "1", memory: "2Gi" });

  it("fills an empty pool to its size", () => {
    const p = planRefill({ size: 2, perServer }, []);
    expect(p).toMatchObject({
      target: 2,
      create: 2,
      remove: [],
      free: 2,
      warm: 0,
      starting: 2,
      budgetLimited: false,
    });
  });

  it("refills behind a hand-over: a claimed server no longer counts", () => {
    const p = planRefill({ size: 2, perServer }, [server("a", { claimedBy: "uid-1" }), server("b")]);
    expect(p).toMatchObject({ create: 1, remove: [], free: 2, warm: 1, starting: 1 });
  });

  it("does nothing when full, counting starting servers as on their way", () => {
    const p = planRefill({ size: 2, perServer }, [server("a"), server("b", { state: "starting" })]);
    expect(p).toMatchObject({ create: 0, remove: [] });
  });

  it("replaces a failed server", () => {
    const p = planRefill({ size: 1, perServer }, [server("a", { state: "failed" })]);
    expect(p).toMatchObject({ create: 1, remove: ["a"] });
  });

  it("ignores servers being deleted", () => {
    const p = planRefill({ size: 1, perServer }, [server("a", { deleting: true })]);
    expect(p).toMatchObject({ create: 1, remove: [] });
  });

  it("is held to the budget, and says so", () => {
    const p = planRefill({ size: 5, perServer, budget: amountsOf({ cpu: "3" }) }, []);
    expect(p).toMatchObject({ target: 3, create: 3, budgetLimited: true });
  });

  it("shrinks to a lower size or budget: starting servers go first, then the youngest warm ones", () => {
    const servers = [
      server("old", { createdMs: T0 }),
      server("young", { createdMs: T0 + 5_000 }),
      server("booting", { createdMs: T0 - 1_000, state: "starting" }),
    ];
    expect(planRefill({ size: 2, perServer }, servers)).toMatchObject({ create: 0, remove: ["booting"] });
    expect(planRefill({ size: 1, perServer }, servers).remove).toEqual(["young", "booting"]);
    const budget = amountsOf({ memory: "2Gi" });
    expect(planRefill({ size: 3, perServer, budget }, servers)).toMatchObject({
      target: 1,
      remove: ["young", "booting"],
    });
  });

  it("keeps nothing free while the pool is deleted, leaving handed-over servers alone", () => {
    const p = planRefill({ size: 2, perServer, deleting: true }, [
      server("a"),
      server("b", { claimedBy: "u" }),
    ]);
    expect(p).toMatchObject({ target: 0, create: 0, remove: ["a"] });
  });

  it("reports what the free servers request", () => {
    const p = planRefill({ size: 3, perServer }, [
      server("a"),
      server("b", { state: "starting" }),
      server("c", { claimedBy: "u" }),
    ]);
    expect(p.used).toEqual({ cpu: 2, memory: 4 * 2 ** 30 });
  });
});

describe("pooledServerId", () => {
  it("fits livy-<id> in 63 characters for the longest pool name, and differs by time and index", () => {
    const id = pooledServerId("p".repeat(POOL_NAME_MAX), Date.parse("2099-12-31T23:59:59.999Z"), 35);
    expect(`livy-${id}`.length).toBeLessThanOrEqual(63);
    expect(id).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(pooledServerId("p", T0, 0)).not.toBe(pooledServerId("p", T0, 1));
    expect(pooledServerId("p", T0, 0)).not.toBe(pooledServerId("p", T0 + 1, 0));
  });
});
