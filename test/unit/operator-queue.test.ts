import { describe, expect, it } from "vitest";
import { NEW_LANE_SHARE, WorkQueue } from "../../src/operator/queue.ts";

describe("WorkQueue", () => {
  it("collapses adds of a queued key into one entry", async () => {
    const q = new WorkQueue();
    q.add("ns/a");
    q.add("ns/a");
    q.add("ns/b");
    expect(q.length).toBe(2);
    expect(await q.get()).toBe("ns/a");
    expect(await q.get()).toBe("ns/b");
  });

  it("never hands out a key being processed; an add during processing makes one more pass after done", async () => {
    const q = new WorkQueue();
    q.add("ns/a");
    const k = await q.get();
    expect(k).toBe("ns/a");
    q.add("ns/a");
    q.add("ns/a");
    expect(q.length).toBe(0);
    expect(q.isProcessing("ns/a")).toBe(true);
    q.done("ns/a");
    expect(q.length).toBe(1);
    expect(await q.get()).toBe("ns/a");
    q.done("ns/a");
    expect(q.length).toBe(0);
  });

  it("serves progress before first looks, yet gives first looks one pick in NEW_LANE_SHARE", async () => {
    const q = new WorkQueue();
    for (let i = 0; i < 10; i++) q.add(`ns/new-${i}`, "new");
    for (let i = 0; i < 10; i++) q.add(`ns/p-${i}`);
    expect(q.length).toBe(20);
    const order: string[] = [];
    for (let i = 0; i < 20; i++) {
      const k = (await q.get()) as string;
      order.push(k);
      q.done(k);
    }
    // three progress keys, then a new one, while both lanes wait; then the rest of the new lane in order
    expect(NEW_LANE_SHARE).toBe(4);
    expect(order.slice(0, 8)).toEqual([
      "ns/p-0",
      "ns/p-1",
      "ns/p-2",
      "ns/new-0",
      "ns/p-3",
      "ns/p-4",
      "ns/p-5",
      "ns/new-1",
    ]);
    expect(order.filter((k) => k.startsWith("ns/p-"))).toEqual(
      Array.from({ length: 10 }, (_, i) => `ns/p-${i}`),
    );
    expect(order.filter((k) => k.startsWith("ns/new-"))).toEqual(
      Array.from({ length: 10 }, (_, i) => `ns/new-${i}`),
    );
    expect(order.slice(13)).toEqual([
      "ns/new-3",
      "ns/new-4",
      "ns/new-5",
      "ns/new-6",
      "ns/new-7",
      "ns/new-8",
      "ns/new-9",
    ]);
  });

  it("a key queued as new keeps its place when it progresses meanwhile; one added while processed comes back as progress", async () => {
    const q = new WorkQueue();
    q.add("ns/a", "new");
    q.add("ns/a");
    expect(q.length).toBe(1);
    expect(await q.get()).toBe("ns/a");
    q.add("ns/a", "new");
    q.add("ns/b", "new");
    q.add("ns/c", "new");
    q.done("ns/a");
    // ns/a was dirty while processed: back in the progress lane, ahead of the two first looks
    expect(await q.get()).toBe("ns/a");
  });

  it("a lone new lane is served at once", async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.add("ns/x", "new");
    expect(await pending).toBe("ns/x");
    q.add("ns/y", "new");
    expect(await q.get()).toBe("ns/y");
  });

  it("wakes a waiting worker on add", async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.add("ns/x");
    expect(await pending).toBe("ns/x");
  });

  it("backs off exponentially per key and forgets on success", () => {
    const q = new WorkQueue({ backoff: { baseMs: 10, maxMs: 100 }, random: () => 1 });
    expect([q.addRateLimited("k"), q.addRateLimited("k"), q.addRateLimited("k")]).toEqual([10, 20, 40]);
    expect(q.addRateLimited("k")).toBe(80);
    expect(q.addRateLimited("k")).toBe(100);
    expect(q.addRateLimited("other")).toBe(10);
    q.forget("k");
    expect(q.numRequeues("k")).toBe(0);
    expect(q.addRateLimited("k")).toBe(10);
    q.shutdown();
  });

  it("starts every key's backoff afresh once the API server is back (forgetAll)", () => {
    const q = new WorkQueue({ backoff: { baseMs: 10, maxMs: 100_000 }, random: () => 1 });
    // an outage: every key fails again and again
    for (let i = 0; i < 10; i++) for (const k of ["a", "b"]) q.addRateLimited(k);
    expect(q.addRateLimited("a")).toBe(10 * 2 ** 10);
    q.forgetAll();
    expect(q.numRequeues("a")).toBe(0);
    expect(q.numRequeues("b")).toBe(0);
    // a failure right after the recovery retries at once, not minutes later
    expect(q.addRateLimited("b")).toBe(10);
    q.shutdown();
  });

  it("addAfter keeps the earliest pending time", async () => {
    const q = new WorkQueue();
    q.addAfter("k", 10_000);
    q.addAfter("k", 20);
    q.addAfter("k", 5_000);
    const t = performance.now();
    expect(await q.get()).toBe("k");
    expect(performance.now() - t).toBeLessThan(2_000);
    q.shutdown();
  });

  it("shutdown releases waiting workers", async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.shutdown();
    expect(await pending).toBeUndefined();
  });

  it("spreads the retries of keys that failed together (jitter)", () => {
    const q = new WorkQueue({ backoff: { baseMs: 1_000, maxMs: 60_000 } });
    const delays = Array.from({ length: 50 }, (_, i) => q.addRateLimited(`ns/k${i}`));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...delays)).toBeLessThanOrEqual(1_000);
    expect(new Set(delays).size).toBeGreaterThan(25);
    q.shutdown();
  });

  it("bounds the retries of all keys together: a token bucket over the whole queue", () => {
    let now = 0;
    const q = new WorkQueue({
      backoff: { baseMs: 5, maxMs: 1_000 },
      rateLimit: { qps: 10, burst: 5 },
      random: () => 1,
      now: () => now,
    });
    const first = Array.from({ length: 5 }, (_, i) => q.addRateLimited(`ns/a${i}`));
    expect(first).toEqual([5, 5, 5, 5, 5]);
    // the bucket is empty: one retry per 100 ms
    expect([q.addRateLimited("ns/b0"), q.addRateLimited("ns/b1"), q.addRateLimited("ns/b2")]).toEqual([
      100, 200, 300,
    ]);
    now += 1_000;
    expect(q.addRateLimited("ns/c")).toBe(5);
    q.shutdown();
  });
});
