/**
 * The naive poller the client benchmark compares against: what a hand-written integration does. POST the
 * statement, then GET that statement every `intervalMs` until it is finished: one request per statement
 * per tick. Keep-alive connections, as ours, so the difference is the polling alone.
 */
import { Pool } from "undici";

export class NaivePoller {
  readonly #pool: Pool;
  readonly #intervalMs: number;
  requests = 0;

  constructor(baseUrl: string, intervalMs: number) {
    this.#pool = new Pool(baseUrl, { connections: 16 });
    this.#intervalMs = intervalMs;
  }

  async #json<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
    this.requests++;
    const res = await this.#pool.request({
      method,
      path,
      headers: { "content-type": "application/json", "x-requested-by": "naive" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.body.text();
    if (res.statusCode >= 400) throw new Error(`${method} ${path}: HTTP ${res.statusCode} ${text}`);
    return JSON.parse(text) as T;
  }

  /** Runs `code` and returns its text/plain output. */
  async run(sessionId: number, code: string): Promise<string> {
    return this.#await(sessionId, await this.#post(sessionId, code));
  }

  /**
   * Runs a session's share of a burst. `ordered`: each POST waits for the previous one's 201 (what keeps
   * Livy's order without pipelining, as this client did before); otherwise all are POSTed at once on the
   * pool's connections, and Livy may number them in another order.
   */
  async burst(sessionId: number, codes: string[], ordered: boolean): Promise<string[]> {
    if (!ordered) return Promise.all(codes.map((c) => this.run(sessionId, c)));
    const waits: Promise<string>[] = [];
    for (const code of codes) {
      const st = await this.#post(sessionId, code);
      const wait = this.#await(sessionId, st);
      wait.catch(() => {});
      waits.push(wait);
    }
    return Promise.all(waits);
  }

  #post(sessionId: number, code: string): Promise<Statement> {
    return this.#json<Statement>("POST", `/sessions/${sessionId}/statements`, { code });
  }

  async #await(sessionId: number, first: Statement): Promise<string> {
    let st = first;
    while (st.state === "waiting" || st.state === "running" || (st.state === "available" && !st.output)) {
      await new Promise((r) => setTimeout(r, this.#intervalMs));
      st = await this.#json<Statement>("GET", `/sessions/${sessionId}/statements/${st.id}`);
    }
    if (st.output?.status !== "ok") throw new Error(`statement ${st.id}: ${JSON.stringify(st.output)}`);
    return String(st.output.data?.["text/plain"] ?? "");
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

interface Statement {
  id: number;
  state: string;
  output?: { status: string; data?: Record<string, unknown> } | null;
}
