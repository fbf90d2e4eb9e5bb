import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { keepAliveMs, LivyClients } from "../../src/operator/livy-clients.ts";

describe("the operator's Livy clients", () => {
  let server: Server | undefined;
  let clients: LivyClients | undefined;
  afterEach(async () => {
    await clients?.close();
    await new Promise((r) => server?.close(r));
  });

  it("keep connections alive longer than the poll interval, so a poll needs no new connection (nor DNS)", async () => {
    let connections = 0;
    // like Livy's Jetty: keeps idle connections, sends no Keep-Alive hint (which undici would follow)
    server = createServer({ keepAliveTimeout: 0 }, (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end('{"from":0,"total":0,"sessions":[]}');
    });
    server.on("connection", () => connections++);
    await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // polled every 5 s by default; undici's own keep-alive is 4 s
    clients = new LivyClients({ requestTimeoutMs: 2_000, pollIntervalMs: 5_000 });
    const client = clients.get(url);
    await client.listSessions();
    await new Promise((r) => setTimeout(r, 4_500));
    await client.listSessions();
    expect(connections).toBe(1);
    expect(keepAliveMs(5_000)).toBeGreaterThan(5_000);
  }, 15_000);

  it("one client per URL and credentials; released with the URL", async () => {
    clients = new LivyClients({ requestTimeoutMs: 1_000, pollIntervalMs: 500 });
    const a = clients.get("http://a:8998");
    expect(clients.get("http://a:8998")).toBe(a);
    const b = clients.get("http://a:8998", { type: "bearer", token: "t" });
    expect(b).not.toBe(a);
    clients.get("http://b:8998");
    expect(clients.size).toBe(3);
    clients.release("http://a:8998");
    expect(clients.size).toBe(1);
  });
});
