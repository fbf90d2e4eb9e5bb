import { createHash } from "node:crypto";
import { type LivyAuth, LivyClient } from "../livy/client.ts";
import { Pool } from "../util/undici.ts";

export interface LivyClientsOptions {
  requestTimeoutMs: number;
  /** How often a Ready session is polled: connections are kept alive longer than this. */
  pollIntervalMs: number;
  /** Connections per Livy server. */
  connections?: number;
}

/**
 * How long an idle connection to a Livy server is kept. Longer than the poll interval, so that the next
 * poll reuses it: with undici's default (4 s) under the 5 s poll, every poll opened a new connection and
 * resolved the server's name again, so a DNS blip failed polls that had no need of DNS.
 */
export function keepAliveMs(pollIntervalMs: number): number {
  return Math.min(600_000, Math.max(4_000, 3 * pollIntervalMs));
}

/**
 * The operator's Livy clients: one per server URL and credentials, kept alive across passes, closed when the
 * last LivySession using the URL is deleted (kept forever, one client and connection pool per server ever
 * seen made the operator's heap grow with every LivySession created and deleted).
 */
export class LivyClients {
  private readonly opts: LivyClientsOptions;
  private readonly clients = new Map<string, { url: string; client: LivyClient; pool: Pool }>();

  constructor(opts: LivyClientsOptions) {
    this.opts = opts;
  }

  get(url: string, auth?: LivyAuth): LivyClient {
    // keyed by a digest of the credentials, so a rotated Secret gets a new client and no secret is a map key
    const key = auth ? `${url}#${createHash("sha256").update(JSON.stringify(auth)).digest("hex")}` : url;
    const hit = this.clients.get(key);
    if (hit) return hit.client;
    const keepAlive = keepAliveMs(this.opts.pollIntervalMs);
    const pool = new Pool(new URL(url).origin, {
      connections: this.opts.connections ?? 4,
      keepAliveTimeout: keepAlive,
      keepAliveMaxTimeout: keepAlive,
    });
    const client = new LivyClient({
      baseUrl: url,
      timeoutMs: this.opts.requestTimeoutMs,
      dispatcher: pool,
      ...(auth ? { auth } : {}),
    });
    this.clients.set(key, { url, client, pool });
    return client;
  }

  /** Closes the clients of `url`. */
  release(url: string): void {
    for (const [key, c] of this.clients) {
      if (c.url !== url) continue;
      this.clients.delete(key);
      void c.client.close().then(() => c.pool.close());
    }
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(
      all.map(async (c) => {
        await c.client.close();
        await c.pool.close();
      }),
    );
  }

  get size(): number {
    return this.clients.size;
  }
}
