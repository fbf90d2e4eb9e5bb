import { describe, expect, it, vi } from "vitest";
import { NEW_LANE_SHARE, ROUTINE_LANE_SHARE, WorkQueue } from "../../src/operator/queue.ts";

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

  /** Takes every key in the order the queue hands them out, marking each done. */
  const drain = async (q: WorkQueue) => {
    const order: string[] = [];
    while (q.length > 0) {
      const k = (await q.get()) as string;
      order.push(k);
      q.done(k);
    }
    return order;
  };

  it("serves progress before first looks, yet gives first looks one pick in NEW_LANE_SHARE", async () => {
    const q = new WorkQueue();
    const share = NEW_LANE_SHARE;
    expect(share).toBe(16);
    for (let i = 0; i < 10; i++) q.add(`ns/new-${i}`, "new");
    for (let i = 0; i < 2 * share; i++) q.add(`ns/p-${i}`);
    const order = await drain(q);
    // share − 1 progress keys, then a new one, while both lanes wait; then the rest of the new lane in order
    const p = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `ns/p-${from + i}`);
    expect(order.slice(0, 2 * share)).toEqual([
      ...p(0, share - 1),
      "ns/new-0",
      ...p(share - 1, 2 * share - 2),
      "ns/new-1",
    ]);
    expect(order.slice(2 * share)).toEqual([
      "ns/p-30",
      "ns/p-31",
      ...Array.from({ length: 8 }, (_, i) => `ns/new-${i + 2}`),
    ]);
  });

  it("serves a Ready session's poll (routine) after progress and first looks, yet one pick in ROUTINE_LANE_SHARE", async () => {
    const q = new WorkQueue();
    expect(ROUTINE_LANE_SHARE).toBe(16);
    for (let i = 0; i < 3; i++) q.add(`ns/r-${i}`, "routine");
    for (let i = 0; i < 3; i++) q.add(`ns/new-${i}`, "new");
    for (let i = 0; i < 20; i++) q.add(`ns/p-${i}`);
    const order = await drain(q);
    // the 16th pick is owed to both lanes behind progress: the new lane first, the routine lane next
    expect(order.slice(14, 18)).toEqual(["ns/p-14", "ns/new-0", "ns/r-0", "ns/p-15"]);
    expect(order.slice(18)).toEqual([
      "ns/p-16",
      "ns/p-17",
      "ns/p-18",
      "ns/p-19",
      "ns/new-1",
      "ns/new-2",
      "ns/r-1",
      "ns/r-2",
    ]);
  });

  it("moves a routine key to the progress lane when something about it changes; a routine add leaves a queued key where it is", async () => {
    const q = new WorkQueue();
    q.add("ns/ready-a", "routine");
    q.add("ns/ready-b", "routine");
    q.add("ns/p");
    q.add("ns/ready-b"); // its pod died: not behind the other polls
    q.add("ns/p", "routine");
    q.add("ns/new", "new");
    q.add("ns/new", "routine");
    expect(q.length).toBe(4);
    expect(await drain(q)).toEqual(["ns/p", "ns/ready-b", "ns/new", "ns/ready-a"]);
  });

  it("schedules into a lane: a due routine poll waits behind progress; an earlier or later progress schedule makes it progress", async () => {
    vi.useFakeTimers();
    try {
      const q = new WorkQueue();
      q.addAfter("ns/poll", 100, "routine");
      q.addAfter("ns/both-early", 50, "progress");
      q.addAfter("ns/both-early", 100, "routine"); // later: the pending progress add stays progress
      q.addAfter("ns/both-late", 100, "progress");
      q.addAfter("ns/both-late", 50, "routine"); // earlier, replacing a pending progress add: progress
      q.addAfter("ns/routine-then-progress", 50, "routine");
      q.addAfter("ns/routine-then-progress", 100, "progress"); // later, but not routine: the pending one joins progress
      q.add("ns/p");
      vi.advanceTimersByTime(150);
      expect(await drain(q)).toEqual([
        "ns/p",
        "ns/both-early",
        "ns/both-late",
        "ns/routine-then-progress",
        "ns/poll",
      ]);
    } finally {
      vi.useRealTimers();
    }
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
