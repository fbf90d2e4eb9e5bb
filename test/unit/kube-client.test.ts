import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { KubeApiError, KubeClient } from "../../src/kube/client.ts";

/** The API server under load answers 429 with Retry-After (API Priority and Fairness). */
describe("KubeClient and 429 Too Many Requests", () => {
  let server: Server | undefined;
  let client: KubeClient | undefined;
  afterEach(async () => {
    await client?.close();
    await new Promise((r) => server?.close(r));
  });

  async function serve(answers: Array<{ status: number; retryAfter?: string }>) {
    const seen: number[] = [];
    server = createServer((req, res) => {
      req.resume();
      seen.push(Date.now());
      const a = answers.shift() ?? { status: 200 };
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (a.retryAfter) headers["retry-after"] = a.retryAfter;
      res.writeHead(a.status, headers).end(
        a.status === 200
          ? '{"kind":"Namespace","metadata":{"name":"x"}}'
          : JSON.stringify({
              kind: "Status",
              reason: "TooManyRequests",
              message: "too many requests",
              code: a.status,
            }),
      );
    });
    await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        {
          name: "c",
          server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          skipTLSVerify: true,
        },
      ],
      users: [{ name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    client = await KubeClient.create(kc);
    return seen;
  }

  it("waits as long as Retry-After says, then retries (reads and writes alike: a 429 was not processed)", async () => {
    const seen = await serve([
      { status: 429, retryAfter: "1" },
      { status: 429, retryAfter: "1" },
    ]);
    const started = Date.now();
    const ns = await client?.mergePatch<{ metadata: { name: string } }>("/api/v1/namespaces/x", { a: 1 });
    expect(ns?.metadata.name).toBe("x");
    expect(seen).toHaveLength(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
  });

  it("gives up after a few tries with the API server's error", async () => {
    const seen = await serve(Array.from({ length: 10 }, () => ({ status: 429, retryAfter: "0" })));
    const err = await client?.get("/api/v1/namespaces/x").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).status).toBe(429);
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.length).toBeLessThanOrEqual(5);
  });

  it("stops waiting when the caller's signal aborts", async () => {
    await serve([{ status: 429, retryAfter: "30" }]);
    const abort = new AbortController();
    setTimeout(() => abort.abort(new Error("stop")), 200);
    const started = Date.now();
    await expect(client?.get("/api/v1/namespaces/x", { signal: abort.signal })).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
