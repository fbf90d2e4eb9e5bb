import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, Client, Pool, requestUrl } from "../../src/util/undici.ts";

// src/util/undici.ts loads undici's files without its index: these are what would break if an upgrade
// moved or renamed them
describe("undici without its index", () => {
  let server: Server;
  let origin: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ method: req.method, url: req.url }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("exports the classes undici's index exports", async () => {
    const index = await import("undici");
    expect(Agent).toBe(index.Agent);
    expect(Pool).toBe(index.Pool);
    expect(Client).toBe(index.Client);
  });

  it("gives every dispatcher request(): Agent with requestUrl keeps path and query", async () => {
    const agent = new Agent();
    try {
      const res = await requestUrl(agent, `${origin}/api/v1/pods?watch=true&x=%2F`, { method: "GET" });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ method: "GET", url: "/api/v1/pods?watch=true&x=%2F" });
    } finally {
      await agent.close();
    }
  });

  it("Pool and Client answer request() with a body", async () => {
    for (const d of [new Pool(origin, { connections: 1, pipelining: 2 }), new Client(origin)]) {
      try {
        const res = await d.request({ method: "POST", path: "/sessions/1/statements", body: "{}" });
        expect(await res.body.json()).toEqual({ method: "POST", url: "/sessions/1/statements" });
      } finally {
        await d.close();
      }
    }
  });
});
