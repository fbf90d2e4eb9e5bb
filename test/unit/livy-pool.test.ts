import { describe, expect, it } from "vitest";
import {
  type InteractiveSession,
  LivyAbortError,
  LivyTimeoutError,
  PoolQueueFullError,
  SessionNotUsableError,
  SessionPool,
} from "../../src/livy/index.ts";
import { useStandin } from "./livy-fixtures.ts";

const fx = useStandin();

async function sessions(n: number): Promise<InteractiveSession[]> {
  const client = fx.client();
  return Promise.all(Array.from({ length: n }, async () => client.session(await fx.idleSession(client))));
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe("SessionPool", () => {
  it("runs statements in parallel across sessions, spread evenly", async () => {
    const pool = new SessionPool(await sessions(4));
    const started = Date.now();
    const pooled = await Promise.all(Array.from({ length: 8 }, (_, i) => pool.submit(`sleep 1; ${i}`)));
    const results = await Promise.all(pooled.map((p) => p.result));
    const wall = Date.now() - started;
    expect(results.map((r) => r.text)).toEqual(["0", "1", "2", "3", "4", "5", "6", "7"]);
    // Livy's own start/end times show the parallelism whatever the machine's load: four at once.
    const events = results.flatMap((r) => [
      [r.started ?? 0, 1],
      [r.completed ?? 0, -1],
    ]);
    events.sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0) || (a[1] ?? 0) - (b[1] ?? 0));
    let running = 0;
    let most = 0;
    for (const [, delta] of events) {
      running += delta ?? 0;
      most = Math.max(most, running);
    }
    expect(most).toBe(4);
    // Serially it would take 8 s; in parallel 2 s, plus what a loaded machine adds (a loose bound: the
    // parallelism itself is asserted above from Livy's own times, which load cannot blur).
    expect(wall).toBeLessThan(7_000);
    const perSession = new Map<number, number>();
    for (const r of results) perSession.set(r.sessionId, (perSession.get(r.sessionId) ?? 0) + 1);
    expect([...perSession.values()]).toEqual([2, 2, 2, 2]);
  });

  it("dispatches to the least busy session", async () => {
    const [a, b] = await sessions(2);
    if (!a || !b) throw new Error("no sessions");
    const pool = new SessionPool([a, b], { maxInFlightPerSession: 2 });
    const long = await pool.submit("sleep 0.3");
    const short = await Promise.all(["1", "2", "3"].map((c) => pool.submit(c)));
    const shortResults = await Promise.all(short.map((p) => p.result));
    const longSession = (await long.dispatched).sessionId;
    // The busy session got one more at most; the rest went to the free one.
    expect(shortResults.filter((r) => r.sessionId === longSession).length).toBeLessThanOrEqual(1);
    await long.result;
    expect(pool.load()).toEqual([0, 0]);
  });

  it("rejects when the queue is full, if told to", async () => {
    const pool = new SessionPool(await sessions(1), {
      maxInFlightPerSession: 1,
      maxQueue: 2,
      whenFull: "reject",
    });
    const admitted = await Promise.all(["sleep 0.2", "1", "2"].map((c) => pool.submit(c)));
    expect(pool.queued).toBe(2);
    const err = await rejection(pool.submit("3"));
    expect(err).toBeInstanceOf(PoolQueueFullError);
    expect(err).toMatchObject({ code: "LIVY_QUEUE_FULL", limit: 2 });
    await Promise.all(admitted.map((p) => p.result));
  });

  it("makes the producer wait for room by default (back-pressure)", async () => {
    const pool = new SessionPool(await sessions(1), { maxInFlightPerSession: 1, maxQueue: 1 });
    const first = await pool.submit("sleep 0.2");
    await pool.submit("1");
    let admitted = false;
    const third = pool.submit("2").then((p) => {
      admitted = true;
      return p;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(admitted).toBe(false);
    await first.result;
    await expect((await third).result).resolves.toMatchObject({ text: "2" });
    expect(admitted).toBe(true);
  });

  it("times out a statement still waiting in the pool, and removes it", async () => {
    const pool = new SessionPool(await sessions(1), { maxInFlightPerSession: 1 });
    const busy = await pool.submit("sleep 0.3");
    const waiting = await pool.submit("1", { timeoutMs: 50 });
    expect(await rejection(waiting.result)).toBeInstanceOf(LivyTimeoutError);
    expect(pool.queued).toBe(0);
    await busy.result;
  });

  it("cancels a queued statement without it ever reaching Livy", async () => {
    const pool = new SessionPool(await sessions(1), { maxInFlightPerSession: 1 });
    const busy = await pool.submit("sleep 0.1");
    const queued = await pool.submit("never()");
    await queued.cancel();
    expect(await rejection(queued.result)).toBeInstanceOf(LivyAbortError);
    await busy.result;
    const posted = fx.standin.control.counters().routes["POST /sessions/:id/statements"];
    expect(posted).toBe(1);
  });

  it("avoids sessions known to be dead and fails when none is left", async () => {
    const [dead, alive] = await sessions(2);
    if (!dead || !alive) throw new Error("no sessions");
    fx.standin.control.killSession(dead.id);
    await dead.refreshState();
    const pool = new SessionPool([dead, alive]);
    const results = await Promise.all(["1", "2", "3"].map((c) => pool.run(c)));
    expect(results.every((r) => r.sessionId === alive.id)).toBe(true);

    fx.standin.control.killSession(alive.id);
    await alive.refreshState();
    expect(await rejection(pool.run("4"))).toBeInstanceOf(SessionNotUsableError);
  });

  it("close() rejects what is queued", async () => {
    const pool = new SessionPool(await sessions(1), { maxInFlightPerSession: 1 });
    const busy = await pool.submit("sleep 0.1");
    const queued = await pool.submit("1");
    pool.close();
    expect(await rejection(queued.result)).toBeInstanceOf(LivyAbortError);
    await expect(busy.result).resolves.toBeDefined();
    expect(await rejection(pool.submit("2"))).toBeInstanceOf(LivyAbortError);
  });
});
