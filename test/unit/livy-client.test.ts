import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  LivyAbortError,
  LivyClient,
  LivyHttpError,
  LivyProtocolError,
  LivyTimeoutError,
  LivyUnreachableError,
  SessionGoneError,
  SessionNotUsableError,
} from "../../src/livy/index.ts";
import { useStandin } from "./livy-fixtures.ts";

const fx = useStandin();

/** A throwaway server for what the stand-in does not do on purpose (garbage bodies, header capture). */
async function rawServer(
  handler: (headers: IncomingHttpHeaders, url: string) => { status: number; body: string },
): Promise<{ url: string; server: Server; connections: () => number; seen: IncomingHttpHeaders[] }> {
  const seen: IncomingHttpHeaders[] = [];
  let connections = 0;
  const server = createServer((req, res) => {
    seen.push(req.headers);
    const { status, body } = handler(req.headers, req.url ?? "/");
    res.writeHead(status, { "content-type": "application/json" });
    res.end(body);
  });
  server.on("connection", () => connections++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  raw.push(server);
  return { url: `http://127.0.0.1:${port}`, server, connections: () => connections, seen };
}
const raw: Server[] = [];
afterEach(async () => {
  await Promise.all(
    raw.splice(0).map((s) => {
      s.closeAllConnections();
      return new Promise<void>((r) => s.close(() => r()));
    }),
  );
});

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe("LivyClient against the stand-in", () => {
  it("reads /version", async () => {
    const v = await fx.client().version();
    expect(v.version).toBe("0.9.0-incubating");
  });

  it("creates, reads, lists and deletes a session", async () => {
    const client = fx.client();
    const created = await client.createSession({
      kind: "pyspark",
      name: "s1",
      conf: { "spark.x": "1" },
      ttl: undefined,
    });
    expect(created).toMatchObject({
      kind: "pyspark",
      name: "s1",
      state: "starting",
      conf: { "spark.x": "1" },
    });
    expect((await client.getSession(created.id)).id).toBe(created.id);
    expect((await client.getSessionState(created.id)).state).toMatch(/starting|idle/);
    const list = await client.listSessions();
    expect(list).toMatchObject({ from: 0, total: 1 });
    expect(list.sessions.map((s) => s.id)).toEqual([created.id]);
    expect(await client.deleteSession(created.id)).toEqual({ msg: "deleted" });
    const gone = await rejection(client.getSession(created.id));
    expect(gone).toBeInstanceOf(SessionGoneError);
    expect(gone).toMatchObject({
      status: 404,
      msg: `Session '${created.id}' not found.`,
      sessionId: created.id,
    });
  });

  it("reads statements by id and as a newest-first page, and the session log", async () => {
    const client = fx.client();
    const id = await fx.idleSession(client);
    const session = client.session(id);
    for (const code of ["1", "2", "3"]) await (await session.submit(code)).result;
    const page = await client.listStatements(id, { order: "desc", size: 2 });
    expect(page.total_statements).toBe(3);
    expect(page.statements.map((s) => s.id)).toEqual([2, 1]);
    expect((await client.getStatement(id, 0)).output).toMatchObject({
      status: "ok",
      data: { "text/plain": "1" },
    });
    const log = await client.sessionLog(id, { size: 1 });
    expect(log.log).toHaveLength(1);
    expect(log.total).toBeGreaterThan(1);
  });

  it("completes code", async () => {
    const client = fx.client();
    const id = await fx.idleSession(client);
    expect(await client.completion(id, { code: "spa", kind: "pyspark", cursor: 3 })).toContain("spark");
  });

  it("maps Livy's error bodies to typed errors", async () => {
    const client = fx.client();
    const unknownField = await rejection(client.createSession({ kind: "pyspark", nonsense: 1 } as never));
    expect(unknownField).toBeInstanceOf(LivyHttpError);
    expect(unknownField).toMatchObject({ status: 400, code: "LIVY_HTTP" });
    expect((unknownField as LivyHttpError).msg).toContain('Unrecognized field "nonsense"');

    // Starting until the control API says otherwise, however slow the machine.
    fx.standin.control.configure({ sessionStartupMs: 600_000 });
    const starting = await client.createSession({ kind: "pyspark" });
    const notUsable = await rejection(client.submitStatement(starting.id, "1 + 1"));
    expect(notUsable).toBeInstanceOf(SessionNotUsableError);
    expect(notUsable).toMatchObject({ state: "starting", status: 500, sessionId: starting.id });

    fx.standin.control.setSessionState(starting.id, "idle");
    const noStatement = await rejection(client.getStatement(starting.id, 42));
    expect(noStatement).toBeInstanceOf(LivyHttpError);
    expect(noStatement).not.toBeInstanceOf(SessionGoneError);
    expect(noStatement).toMatchObject({ status: 404, msg: "Statement not found" });

    fx.standin.control.killSession(starting.id);
    const inactive = await rejection(client.listStatements(starting.id));
    expect(inactive).toBeInstanceOf(SessionNotUsableError);
    expect(inactive).toMatchObject({ status: 400 });
  });

  it("always sends X-Requested-By, so a CSRF-protected Livy accepts writes", async () => {
    fx.standin.control.configure({ csrf: true });
    const client = fx.client();
    await expect(client.createSession({ kind: "pyspark" })).resolves.toMatchObject({ state: "starting" });
    const res = await fetch(`${fx.standin.url}/sessions`, { method: "POST", body: "{}" });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("Missing Required Header for CSRF protection.");
  });

  it("retries idempotent reads on transient failures only when asked to", async () => {
    fx.standin.control.failRequests({ status: 503, count: 2 });
    const plain = fx.client();
    const err = await rejection(plain.version());
    expect(err).toMatchObject({ status: 503, code: "LIVY_HTTP" });

    fx.standin.control.failRequests({ status: 503, count: 2 });
    const retrying = fx.client({ retry: { retries: 3, minDelayMs: 1, maxDelayMs: 5, factor: 2 } });
    await expect(retrying.version()).resolves.toMatchObject({ version: "0.9.0-incubating" });
    expect(retrying.stats().byRoute["GET /version"]).toBe(3);

    // Writes are never repeated: Livy may have acted on the first one.
    fx.standin.control.failRequests({ status: 503, count: 1 });
    await expect(retrying.createSession({ kind: "pyspark" })).rejects.toMatchObject({ status: 503 });
  });

  it("times out a request that gets no answer", async () => {
    fx.standin.control.configure({ responseDelayMs: 500 });
    const started = Date.now();
    const err = await rejection(fx.client({ timeoutMs: 50 }).version());
    expect(err).toBeInstanceOf(LivyTimeoutError);
    expect(err).toMatchObject({ code: "LIVY_TIMEOUT", timeoutMs: 50 });
    expect(Date.now() - started).toBeLessThan(400);
  });

  it("aborts a request on the caller's signal", async () => {
    fx.standin.control.configure({ responseDelayMs: 500 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("user pressed ctrl-c")), 20);
    const err = await rejection(fx.client().version({ signal: ac.signal }));
    expect(err).toBeInstanceOf(LivyAbortError);
    expect((err as Error).message).toContain("user pressed ctrl-c");
  });

  it("rejects in-flight requests when the client is closed", async () => {
    fx.standin.control.configure({ responseDelayMs: 500 });
    const client = fx.client();
    const pending = rejection(client.version());
    await new Promise((r) => setTimeout(r, 20));
    await client.close();
    expect(await pending).toBeInstanceOf(LivyAbortError);
    expect(() => client.session(0)).toThrow();
  });
});

describe("LivyClient transport", () => {
  it("reports an unreachable server as LivyUnreachableError that was never sent", async () => {
    const { url, server } = await rawServer(() => ({ status: 200, body: "{}" }));
    server.close();
    const err = await rejection(new LivyClient({ baseUrl: url }).version());
    expect(err).toBeInstanceOf(LivyUnreachableError);
    expect(err).toMatchObject({ reason: "ECONNREFUSED", requestSent: false, code: "LIVY_UNREACHABLE" });
  });

  it("reports a body that is not JSON, or JSON of the wrong shape, as LivyProtocolError with a snippet", async () => {
    const { url } = await rawServer((_h, path) =>
      path === "/version"
        ? { status: 200, body: "<html>proxy login</html>" }
        : { status: 200, body: '{"sessions": 3}' },
    );
    const client = new LivyClient({ baseUrl: url });
    try {
      const garbage = await rejection(client.version());
      expect(garbage).toBeInstanceOf(LivyProtocolError);
      expect(garbage).toMatchObject({ snippet: "<html>proxy login</html>" });
      const shape = await rejection(client.listSessions());
      expect(shape).toBeInstanceOf(LivyProtocolError);
      expect((shape as Error).message).toMatch(/sessions/);
    } finally {
      await client.close();
    }
  });

  it("sends auth, CSRF and custom headers, under the base URL's path prefix", async () => {
    const { url, seen } = await rawServer(() => ({ status: 200, body: '{"version":"x"}' }));
    let n = 0;
    const bearer = new LivyClient({
      baseUrl: `${url}/livy/`,
      auth: { type: "bearer", token: () => `t${++n}` },
      headers: { "X-Trace": "abc" },
    });
    const basic = new LivyClient({ baseUrl: url.replace("http://", "http://alice:s%3Acret@") });
    try {
      await bearer.version();
      await bearer.version();
      await basic.version();
    } finally {
      await Promise.all([bearer.close(), basic.close()]);
    }
    expect(seen.map((h) => h.authorization)).toEqual([
      "Bearer t1",
      "Bearer t2",
      `Basic ${Buffer.from("alice:s:cret").toString("base64")}`,
    ]);
    expect(seen.every((h) => h["x-requested-by"] === "livy")).toBe(true);
    expect(seen[0]?.["x-trace"]).toBe("abc");
  });

  it("reuses keep-alive connections instead of opening one per request", async () => {
    const { url, connections } = await rawServer(() => ({ status: 200, body: '{"version":"x"}' }));
    const client = new LivyClient({ baseUrl: url });
    try {
      for (let i = 0; i < 50; i++) await client.version();
    } finally {
      await client.close();
    }
    // undici may alternate between two sockets while one finishes its response; never one per request.
    expect(connections()).toBeLessThanOrEqual(2);
  });
});
