/**
 * The baseline the client is measured against: a naive Livy poller that follows each statement with its
 * own `GET /sessions/{id}/statements/{sid}` every `intervalMs`. Same transport as the client (one undici
 * keep-alive pool), so the difference measured is the monitoring, not HTTP.
 */
import { Pool } from "undici";

export class NaivePoller {
  readonly #pool: Pool;
  readonly #intervalMs: number;
  requests = 0;

  constructor(baseUrl: string, intervalMs: number) {
    this.#pool = new Pool(new URL(baseUrl).origin, { connections: 16 });
    this.#intervalMs = intervalMs;
  }

  async #json(method: "GET" | "POST", path: string, body?: unknown): Promise<Record<string, unknown>> {
    this.requests++;
    const res = await this.#pool.request({
      path,
      method,
      headers: { "content-type": "application/json", "x-requested-by": "livy" },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`${method} ${path}: HTTP ${res.statusCode}: ${text}`);
    return JSON.parse(text) as Record<string, unknown>;
  }

  /** Submits and polls until the statement is done; resolves with its `text/plain` output. */
  async run(sessionId: number, code: string): Promise<string> {
    const st = await this.#json("POST", `/sessions/${sessionId}/statements`, { code });
    return this.wait(sessionId, Number(st.id));
  }

  async submit(sessionId: number, code: string): Promise<number> {
    return Number((await this.#json("POST", `/sessions/${sessionId}/statements`, { code })).id);
  }

  async wait(sessionId: number, statementId: number): Promise<string> {
    for (;;) {
      await new Promise((r) => setTimeout(r, this.#intervalMs));
      const st = await this.#json("GET", `/sessions/${sessionId}/statements/${statementId}`);
      if (st.state === "available" || st.state === "cancelled") {
        const output = st.output as { data?: Record<string, unknown> } | null;
        return String(output?.data?.["text/plain"] ?? "");
      }
    }
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}
