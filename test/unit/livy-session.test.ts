import { describe, expect, it } from "vitest";
import {
  LivyAbortError,
  LivyHttpError,
  LivyTimeoutError,
  LivyUnreachableError,
  SessionGoneError,
  SessionNotUsableError,
  StatementCancelledError,
  StatementError,
  type StatementStateChange,
} from "../../src/livy/index.ts";
import { useStandin } from "./livy-fixtures.ts";

const fx = useStandin();

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

const ms = (n: number) => new Promise((r) => setTimeout(r, n));

describe("InteractiveSession.submit", () => {
  it("resolves on acceptance and gives typed results", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    fx.standin.control.program("plot()", { data: { "image/png": "iVBORw0KGgo=", "text/plain": "<Figure>" } });
    const handle = await session.submit("1 + 1");
    expect(handle.state).toBe("waiting");
    expect(handle.done).toBe(false);
    await expect(handle.result).resolves.toMatchObject({ kind: "text", text: "2", statementId: handle.id });
    await expect(session.run("spark.range(1000).count()")).resolves.toMatchObject({
      kind: "text",
      text: "1000",
    });
    await expect(session.run("d = {'a': [1, 2]}\n%json d")).resolves.toMatchObject({
      kind: "json",
      json: { a: [1, 2] },
    });
    await expect(session.run("rows = [{'n': 1, 's': 'x'}]\n%table rows")).resolves.toMatchObject({
      kind: "table",
      columns: [
        { name: "n", type: "INT_TYPE" },
        { name: "s", type: "STRING_TYPE" },
      ],
      rows: [[1, "x"]],
    });
    await expect(session.run("plot()")).resolves.toMatchObject({
      kind: "image",
      mimeType: "image/png",
      text: "<Figure>",
    });
    await expect(session.run("SELECT id FROM range(2)", { kind: "sql" })).resolves.toMatchObject({
      kind: "table",
      columns: [{ name: "id", type: "long" }],
      rows: [[0], [1]],
    });
  });

  it("rejects result with StatementError carrying Livy's ename, evalue and traceback", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    const handle = await session.submit("1/0");
    const err = await rejection(handle.result);
    expect(err).toBeInstanceOf(StatementError);
    expect(err).toMatchObject({
      ename: "ZeroDivisionError",
      evalue: "division by zero",
      statementId: handle.id,
      sessionId: session.id,
    });
    expect((err as StatementError).traceback.at(-1)).toBe("ZeroDivisionError: division by zero\n");
  });

  it("keeps submission order for concurrent submits: ids, start and completion", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    await session.run("x = 0");
    const codes = Array.from({ length: 10 }, (_, i) => `x = x * 10 + ${i}; x`);
    const handles = await Promise.all(codes.map((c) => session.submit(c)));
    const ids = handles.map((h) => h.id);
    expect(ids).toEqual(ids.map((_, i) => (ids[0] ?? 0) + i));
    const results = await Promise.all(handles.map((h) => h.result));
    // Each statement saw exactly the ones submitted before it: the REPL ran them in submission order.
    expect(results.map((r) => r.text)).toEqual(
      codes.map((_, i) => String(Number("0123456789".slice(0, i + 1)))),
    );
    for (let i = 1; i < results.length; i++) {
      const prev = results[i - 1];
      const cur = results[i];
      expect(cur?.started).toBeGreaterThanOrEqual(prev?.completed ?? Number.POSITIVE_INFINITY);
    }
  });

  it("streams state changes and progress, through events and the async iterator", async () => {
    fx.standin.control.configure({ statementRunMs: 200 });
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    const handle = await session.submit("spark.range(10).count()");
    const progress: number[] = [];
    const events: string[] = [];
    handle.on("progress", (p) => progress.push(p));
    handle.on("state", (c) => events.push(c.state));
    const seen: StatementStateChange[] = [];
    for await (const change of handle) seen.push(change);
    expect(seen[0]?.state).toBe("waiting");
    expect(seen.at(-1)?.state).toBe("available");
    expect(seen.map((c) => c.state)).toContain("running");
    expect(events.at(-1)).toBe("available");
    expect(progress.length).toBeGreaterThan(1);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(progress.at(-1)).toBe(1);
    await expect(handle.result).resolves.toMatchObject({ text: "10" });
  });

  it("cancels a running statement; the ones queued behind it run on", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    const long = await session.submit("import time; time.sleep(60)");
    const next = await session.submit("1 + 1");
    for await (const c of long) if (c.state === "running") break;
    await long.cancel();
    const err = await rejection(long.result);
    expect(err).toBeInstanceOf(StatementCancelledError);
    expect(long.state).toBe("cancelled");
    await expect(next.result).resolves.toMatchObject({ text: "2" });
  });

  it("cancels a statement still waiting in Livy's queue", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    const first = await session.submit("sleep 0.2");
    const queued = await session.submit("2 + 2");
    await queued.cancel();
    expect(await rejection(queued.result)).toBeInstanceOf(StatementCancelledError);
    await expect(first.result).resolves.toMatchObject({ kind: "text" });
  });

  it("times out a statement and cancels it in Livy, freeing the session", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    // the timeout also bounds the submission: long enough that a loaded machine still submits within it
    const handle = await session.submit("sleep 30", { timeoutMs: 1_000 });
    const err = await rejection(handle.result);
    expect(err).toBeInstanceOf(LivyTimeoutError);
    // the cancel is sent as the timeout fires; Livy (the stand-in) records it on its next turn
    const deadline = Date.now() + 10_000;
    let state = (await client.getStatement(session.id, handle.id)).state;
    while (state !== "cancelled" && Date.now() < deadline) {
      await ms(20);
      state = (await client.getStatement(session.id, handle.id)).state;
    }
    expect(state).toBe("cancelled");
    await expect(session.run("3 * 3", { timeoutMs: 10_000 })).resolves.toMatchObject({ text: "9" });
  });

  it("aborts a statement on the caller's signal", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    const ac = new AbortController();
    const handle = await session.submit("sleep 30", { signal: ac.signal });
    ac.abort();
    expect(await rejection(handle.result)).toBeInstanceOf(LivyAbortError);
    const already = await rejection(session.submit("1", { signal: ac.signal }));
    expect(already).toBeInstanceOf(LivyAbortError);
  });

  it("rejects in-flight results with LivyAbortError when the client closes", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    const handle = await session.submit("sleep 30");
    await client.close();
    expect(await rejection(handle.result)).toBeInstanceOf(LivyAbortError);
  });

  it("rejects a statement Livy forgot (beyond its retained statements) with the 404", async () => {
    fx.standin.control.configure({ retainedStatements: 2 });
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    const first = await session.submit("sleep 0.2");
    const rest = await Promise.all(["1", "2", "3"].map((c) => session.submit(c)));
    const err = await rejection(first.result);
    expect(err).toBeInstanceOf(LivyHttpError);
    expect(err).toMatchObject({ status: 404, msg: "Statement not found" });
    await expect(rest[2]?.result).resolves.toMatchObject({ text: "3" });
  });
});

describe("fail-fast mode (default)", () => {
  it("rejects a submission to a starting session at once", async () => {
    fx.standin.control.configure({ sessionStartupMs: 5_000 });
    const client = fx.client();
    const { id } = await client.createSession({ kind: "pyspark" });
    const started = Date.now();
    const err = await rejection(client.session(id).submit("1 + 1"));
    expect(err).toBeInstanceOf(SessionNotUsableError);
    expect(err).toMatchObject({ state: "starting", sessionId: id });
    expect(Date.now() - started).toBeLessThan(200);
  });

  it("rejects every in-flight statement as soon as the session dies, and later submissions without a request", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    const handles = await Promise.all(["sleep 10", "1", "2"].map((c) => session.submit(c)));
    await ms(50);
    const killedAt = Date.now();
    fx.standin.control.killSession(session.id);
    const errors = await Promise.all(handles.map((h) => rejection(h.result)));
    const detectedIn = Date.now() - killedAt;
    for (const err of errors) {
      expect(err).toBeInstanceOf(SessionNotUsableError);
      expect(err).toMatchObject({ state: "dead", sessionId: session.id });
    }
    // Within one backed-off poll interval (the monitor's ceiling is 1 s; here it has barely backed off).
    expect(detectedIn).toBeLessThan(600);
    const before = fx.standin.control.counters().total;
    expect(await rejection(session.submit("1"))).toMatchObject({
      code: "LIVY_SESSION_NOT_USABLE",
      state: "dead",
    });
    expect(fx.standin.control.counters().total).toBe(before);
  });

  it("rejects in-flight statements at once when the server becomes unreachable", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    const handle = await session.submit("sleep 10");
    await ms(30);
    fx.standin.control.unreachable(1_000);
    const err = await rejection(handle.result);
    expect(err).toBeInstanceOf(LivyUnreachableError);
    expect(session.state).toBe("unreachable");
  });

  it("reports a deleted session as gone", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    const handle = await session.submit("sleep 10");
    await client.deleteSession(session.id);
    expect(await rejection(handle.result)).toBeInstanceOf(SessionGoneError);
    expect(await rejection(session.submit("1"))).toMatchObject({ state: "gone" });
  });
});

describe("resilient mode", () => {
  it("waits for a starting session instead of failing", async () => {
    fx.standin.control.configure({ sessionStartupMs: 300 });
    const client = fx.client();
    const { id } = await client.createSession({ kind: "pyspark" });
    const session = client.session(id, { mode: "resilient" });
    await expect(session.run("1 + 1", { timeoutMs: 5_000 })).resolves.toMatchObject({ text: "2" });
  });

  it("keeps in-flight statements through a short outage", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client), { mode: "resilient" });
    const handle = await session.submit("sleep 0.5");
    await ms(30);
    fx.standin.control.unreachable(300);
    await expect(handle.result).resolves.toMatchObject({ kind: "text" });
  });

  it("still gives up when the session is dead", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client), { mode: "resilient" });
    const handle = await session.submit("sleep 10");
    await ms(30);
    fx.standin.control.killSession(session.id, "killed");
    expect(await rejection(handle.result)).toMatchObject({
      code: "LIVY_SESSION_NOT_USABLE",
      state: "killed",
    });
  });

  it("bounds the wait for a session that never starts", async () => {
    fx.standin.control.configure({ sessionStartupMs: 60_000 });
    const client = fx.client();
    const { id } = await client.createSession({ kind: "pyspark" });
    const err = await rejection(client.session(id, { mode: "resilient" }).submit("1", { timeoutMs: 150 }));
    expect(err).toBeInstanceOf(LivyTimeoutError);
  });
});

describe("waitForIdle", () => {
  it("resolves when the session turns idle", async () => {
    fx.standin.control.configure({ sessionStartupMs: 100 });
    const client = fx.client();
    const { id } = await client.createSession({ kind: "pyspark" });
    const session = client.session(id);
    await expect(session.waitForIdle({ timeoutMs: 2_000, pollMs: 10 })).resolves.toMatchObject({
      state: "idle",
    });
    expect(session.state).toBe("idle");
  });

  it("rejects at once on a final state, and on its timeout", async () => {
    fx.standin.control.configure({ sessionStartupMs: 60_000 });
    const client = fx.client();
    const { id } = await client.createSession({ kind: "pyspark" });
    const session = client.session(id);
    expect(await rejection(session.waitForIdle({ timeoutMs: 50, pollMs: 5 }))).toBeInstanceOf(
      LivyTimeoutError,
    );
    fx.standin.control.killSession(id, "error");
    expect(await rejection(session.waitForIdle({ timeoutMs: 2_000 }))).toMatchObject({ state: "error" });
  });
});

describe("monitoring", () => {
  it("polls each busy session once per tick, however many statements it has in flight", async () => {
    const client = fx.client();
    const sessions = await Promise.all(
      [0, 1, 2].map(async () => client.session(await fx.idleSession(client))),
    );
    fx.standin.control.resetCounters();
    const handles = (
      await Promise.all(
        sessions.map((s) => Promise.all(Array.from({ length: 8 }, () => s.submit("sleep 0.05")))),
      )
    ).flat();
    await Promise.all(handles.map((h) => h.result));
    const counters = fx.standin.control.counters();
    for (const s of sessions) {
      const { ticks, fallbackRequests } = s.monitorStats();
      expect(fallbackRequests).toBe(0);
      expect(counters.paths[`GET /sessions/${s.id}/statements`]).toBe(ticks);
      // 8 statements of 50 ms each: a poll per statement per tick would be 8x the ticks.
      expect(ticks).toBeLessThan(60);
    }
    expect(counters.routes["GET /sessions/:id/statements/:sid"]).toBeUndefined();
    expect(counters.routes["POST /sessions/:id/statements"]).toBe(24);
  });

  it("backs off for a long statement and stops polling when nothing is in flight", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    fx.standin.control.resetCounters();
    const started = Date.now();
    await session.run("sleep 2");
    const elapsed = Date.now() - started;
    const polls = fx.standin.control.counters().routes["GET /sessions/:id/statements"] ?? 0;
    // A fixed 10 ms poll would make ~200 requests; backing off to 1 s makes about 15.
    expect(polls).toBeLessThan(25);
    expect(elapsed).toBeLessThan(3_200);
    await ms(1_200);
    expect(fx.standin.control.counters().routes["GET /sessions/:id/statements"]).toBe(polls);
  });

  it("answers a trivial statement within a few polls of the fast interval", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    await session.run("0");
    // Counted in polls, not milliseconds: a unit test cannot time a loaded machine (the latency itself is
    // measured by `npm run bench -- client`). A trivial statement is answered at once by the stand-in, so
    // the first polls of the fast interval see it; a slow first interval or a missed answer makes many more.
    const polls: number[] = [];
    for (let i = 0; i < 7; i++) {
      const before = fx.standin.control.counters().routes["GET /sessions/:id/statements"] ?? 0;
      await session.run("1 + 1");
      polls.push((fx.standin.control.counters().routes["GET /sessions/:id/statements"] ?? 0) - before);
    }
    const median = polls.sort((a, b) => a - b)[3] ?? Number.POSITIVE_INFINITY;
    expect(median).toBeLessThanOrEqual(3);
  });

  it("falls back to reading a statement by id when it is older than the list window", async () => {
    const client = fx.client({ monitor: { maxWindow: 2 } });
    const session = client.session(await fx.idleSession(client));
    const handles = await Promise.all(["sleep 0.1", "1", "2", "3", "4"].map((c) => session.submit(c)));
    const results = await Promise.all(handles.map((h) => h.result));
    expect(results.slice(1).map((r) => r.text)).toEqual(["1", "2", "3", "4"]);
    expect(session.monitorStats().fallbackRequests).toBeGreaterThan(0);
  });

  it("shares one monitor between views of the same session", async () => {
    const client = fx.client();
    const id = await fx.idleSession(client);
    const a = client.session(id);
    const b = client.session(id, { mode: "resilient" });
    const [ha, hb] = await Promise.all([a.submit("sleep 0.1"), b.submit("sleep 0.1")]);
    expect(a.inFlight).toBe(2);
    await Promise.all([ha.result, hb.result]);
    expect(a.monitorStats()).toEqual(b.monitorStats());
  });
});
