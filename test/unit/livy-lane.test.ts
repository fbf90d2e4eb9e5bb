/**
 * Burst dispatch: a session's statement POSTs leave in submission order, pipelined on one connection, never
 * twice. The order itself is checked against real Livy in test/integration/livy-contract.test.ts.
 */
import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { LivyClient, LivyUnreachableError, SessionPool } from "../../src/livy/index.ts";
import { OrderedLane } from "../../src/livy/lane.ts";
import { useStandin } from "./livy-fixtures.ts";

const fx = useStandin();

/** `acc = []`, then `acc = acc + [i]; len(acc)`: each result says how many ran before it. */
function dependentBurst(n: number): string[] {
  return ["acc = []", ...Array.from({ length: n }, (_, i) => `acc = acc + [${i + 1}]; len(acc)`)];
}

interface RawRequest {
  connection: number;
  code: string;
}

/**
 * A bare HTTP/1.1 server on a socket, to see what the client puts on the wire: which connection each
 * request came on and when. `answer` decides when the requests received so far are answered (each with a
 * `201` statement numbered in arrival order); `afterAnswer` may drop the connection.
 */
class WireServer {
  readonly requests: RawRequest[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #connections = 0;
  #nextId = 0;
  url = "";

  constructor(
    answer: (received: number, pending: number) => number,
    afterAnswer: (answered: number, socket: Socket) => void = () => {},
  ) {
    this.#server = createServer((socket) => {
      const connection = this.#connections++;
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
      socket.on("error", () => {});
      let buf = "";
      const pending: number[] = [];
      let answered = 0;
      socket.on("data", (chunk) => {
        buf += chunk.toString("latin1");
        for (;;) {
          const end = buf.indexOf("\r\n\r\n");
          if (end < 0) break;
          const length = Number(/content-length: (\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
          if (buf.length < end + 4 + length) break;
          const body = buf.slice(end + 4, end + 4 + length);
          buf = buf.slice(end + 4 + length);
          this.requests.push({ connection, code: (JSON.parse(body) as { code: string }).code });
          pending.push(this.#nextId++);
        }
        let count = answer(this.requests.length, pending.length);
        while (count-- > 0 && pending.length > 0) {
          const id = pending.shift() as number;
          const json = JSON.stringify({ id, code: "", state: "waiting", output: null, progress: 0 });
          socket.write(
            `HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: ${json.length}\r\n\r\n${json}`,
          );
          afterAnswer(++answered, socket);
        }
      });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    const address = this.#server.address();
    if (!address || typeof address === "string") throw new Error("no address");
    this.url = `http://127.0.0.1:${address.port}`;
    return this.url;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

const servers: WireServer[] = [];
const clients: LivyClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function wire(
  answer: (received: number, pending: number) => number,
  afterAnswer?: (answered: number, socket: Socket) => void,
  options: { pipelining?: number } = {},
): Promise<{ server: WireServer; client: LivyClient }> {
  const server = new WireServer(answer, afterAnswer);
  servers.push(server);
  const client = new LivyClient({ baseUrl: await server.start(), ...options });
  clients.push(client);
  return { server, client };
}

describe("burst dispatch", () => {
  it("runs a burst of dependent statements in submission order (stand-in)", async () => {
    const client = fx.client();
    const session = client.session(await fx.idleSession(client));
    const codes = dependentBurst(40);
    const handles = await Promise.all(codes.map((code) => session.submit(code)));
    const ids = handles.map((h) => h.id);
    expect(ids).toEqual(ids.map((_, i) => (ids[0] ?? 0) + i));
    const results = await Promise.all(handles.map((h) => h.result));
    expect(results.slice(1).map((r) => r.text)).toEqual(codes.slice(1).map((_, i) => String(i + 1)));
  });

  it("puts a whole burst on the wire before the first answer: one connection, submission order", async () => {
    // The server answers nothing until all 12 requests are there: a client that waited for each answer
    // before sending the next would never get one.
    const { server, client } = await wire((received) => (received >= 12 ? 12 : 0));
    const codes = Array.from({ length: 12 }, (_, i) => `step ${i}`);
    const statements = await Promise.all(codes.map((code) => client.submitStatement(0, code)));
    expect(statements.map((s) => s.id)).toEqual(codes.map((_, i) => i));
    expect(server.requests.map((r) => r.code)).toEqual(codes);
    expect(new Set(server.requests.map((r) => r.connection)).size).toBe(1);
  });

  it("with pipelining: 1, sends the next statement only after the previous one was answered", async () => {
    let most = 0;
    const { server, client } = await wire(
      (_received, pending) => {
        most = Math.max(most, pending);
        return 1;
      },
      undefined,
      { pipelining: 1 },
    );
    const codes = Array.from({ length: 6 }, (_, i) => `step ${i}`);
    await Promise.all(codes.map((code) => client.submitStatement(0, code)));
    expect(server.requests.map((r) => r.code)).toEqual(codes);
    expect(most).toBe(1);
  });

  it("never sends a statement twice when the connection drops with requests unanswered", async () => {
    // Answers the first request, then drops the connection with the next two written and unanswered:
    // Livy may have created them, so the client reports them lost instead of sending them again.
    let dropped = false;
    const { server, client } = await wire(
      (received) => (received >= 3 ? 1 : 0),
      (_answered, socket) => {
        if (dropped) return;
        dropped = true;
        setImmediate(() => socket.destroy());
      },
    );
    const outcomes = await Promise.allSettled(
      ["a = 1", "b = 2", "c = 3"].map((code) => client.submitStatement(0, code)),
    );
    expect(outcomes[0]).toMatchObject({ status: "fulfilled", value: { id: 0 } });
    for (const o of outcomes.slice(1)) {
      expect(o.status).toBe("rejected");
      const err = (o as PromiseRejectedResult).reason;
      expect(err).toBeInstanceOf(LivyUnreachableError);
      expect(err).toMatchObject({ requestSent: true });
    }
    // the next statement goes out on a new connection; nothing was sent twice
    await expect(client.submitStatement(0, "d = 4")).resolves.toMatchObject({ id: 3 });
    expect(server.requests.map((r) => r.code)).toEqual(["a = 1", "b = 2", "c = 3", "d = 4"]);
  });

  it("drops a statement given up on while it waits its turn, without sending it", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { server, client } = await wire(() => 1, undefined, { pipelining: 1 });
    const abort = new AbortController();
    const first = client.submitStatement(0, "first", {
      beforeSend: () => gate,
    });
    const second = client.submitStatement(0, "second", { signal: abort.signal });
    second.catch(() => {}); // awaited below, after it rejected
    const third = client.submitStatement(0, "third");
    abort.abort(new Error("not needed any more"));
    release();
    await expect(first).resolves.toMatchObject({ id: 0 });
    await expect(second).rejects.toMatchObject({ code: "LIVY_ABORTED" });
    await expect(third).resolves.toMatchObject({ id: 1 });
    expect(server.requests.map((r) => r.code)).toEqual(["first", "third"]);
  });

  it("resilient: statements refused while the session starts are sent again in submission order", async () => {
    fx.standin.control.configure({ sessionStartupMs: 300 });
    const client = fx.client();
    const { id } = await client.createSession({ kind: "pyspark" });
    const session = client.session(id, { mode: "resilient" });
    const codes = dependentBurst(15);
    const handles = await Promise.all(codes.map((code) => session.submit(code, { timeoutMs: 10_000 })));
    const results = await Promise.all(handles.map((h) => h.result));
    expect(results.slice(1).map((r) => r.text)).toEqual(codes.slice(1).map((_, i) => String(i + 1)));
    const ids = handles.map((h) => h.id);
    expect(ids).toEqual(ids.map((_, i) => (ids[0] ?? 0) + i));
    // they were refused at first (the session was starting), not merely held back
    const counters = (await (await fetch(`${fx.standin.url}/_standin/counters`)).json()) as {
      routes: Record<string, number>;
    };
    expect(counters.routes["POST /sessions/:id/statements"]).toBeGreaterThan(codes.length);
  });
});

describe("monitoring during a burst", () => {
  // A burst interval of a minute makes the behaviour plain without timing anything: a poll deferred by it
  // would hold the test far past its timeout.
  it("does not poll a session while a burst of its statements is being submitted, and polls at once after", async () => {
    // one POST at a time, 25 ms each: 16 statements take a while to submit
    fx.standin.control.configure({ responseDelayMs: 25 });
    const client = fx.client({ pipelining: 1, monitor: { burstIntervalMs: 60_000 } });
    const session = client.session(await fx.idleSession(client));
    const handles = await Promise.all(Array.from({ length: 16 }, (_, i) => session.submit(`${i} + 1`)));
    // no poll while at least burstPending (4) were unanswered; the last three acceptances are a trickle
    // (polling after each acceptance, as without the burst rule, makes about 16)
    expect(session.monitorStats().ticks).toBeLessThanOrEqual(3);
    const results = await Promise.all(handles.map((h) => h.result));
    expect(results.map((r) => r.text)).toEqual(Array.from({ length: 16 }, (_, i) => String(i + 1)));
  });

  it("polls at once for a trickle of one or two statements in flight (a SessionPool's)", async () => {
    const client = fx.client({ monitor: { burstIntervalMs: 60_000 } });
    const session = client.session(await fx.idleSession(client));
    const pool = new SessionPool([session], { maxInFlightPerSession: 2 });
    const results = await Promise.all(Array.from({ length: 40 }, () => pool.run("1 + 1")));
    expect(results.every((r) => r.text === "2")).toBe(true);
    pool.close();
  });
});

describe("OrderedLane", () => {
  it("sends a requeued item again before anything submitted after it that was not sent yet", async () => {
    const lane = new OrderedLane(1);
    const sent: string[] = [];
    const refusals = new Map([
      ["a", 2],
      ["c", 1],
    ]);
    const item = (name: string) =>
      lane.submit({
        prepare: () => name,
        send: (n: string) => {
          sent.push(n);
          const left = refusals.get(n) ?? 0;
          if (left > 0) {
            refusals.set(n, left - 1);
            return Promise.reject(new Error("not created"));
          }
          return new Promise<string>((r) => setTimeout(() => r(n), 2));
        },
        resend: (_err, attempt) => attempt < 5,
      });
    const results = await Promise.all(["a", "b", "c", "d"].map(item));
    expect(results).toEqual(["a", "b", "c", "d"]);
    expect(sent).toEqual(["a", "a", "a", "b", "c", "c", "d"]);
  });

  it("rejects with the last failure once resend says no", async () => {
    const lane = new OrderedLane(4);
    let sends = 0;
    const failing = lane.submit({
      prepare: () => undefined,
      send: () => {
        sends++;
        return Promise.reject(new Error(`refused ${sends}`));
      },
      resend: (_err, attempt) => attempt < 2,
    });
    await expect(failing).rejects.toThrow("refused 3");
    await expect(
      lane.submit({ prepare: () => 1, send: (n: number) => Promise.resolve(n + 1) }),
    ).resolves.toBe(2);
  });

  it("keeps at most `depth` requests unanswered", async () => {
    const lane = new OrderedLane(3);
    let inFlight = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 10 }, () =>
        lane.submit({
          prepare: () => undefined,
          send: async () => {
            most = Math.max(most, ++inFlight);
            await new Promise((r) => setTimeout(r, 2));
            inFlight--;
          },
        }),
      ),
    );
    expect(most).toBe(3);
    expect(lane.pending).toBe(0);
  });
});
