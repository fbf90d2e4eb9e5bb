/**
 * Requests to Livy servers, on one keep-alive agent. A failure without an answer is classified: `not_sent`
 * when nothing can have reached Livy (the connection was never made), so anything may be retried, and
 * `unknown` when the request may have been received, so a statement POST must be looked up before it is
 * sent again.
 */
import type { Readable } from "node:stream";
import { Agent, type Dispatcher, requestUrl } from "../util/undici.ts";

export interface UpstreamAnswer {
  status: number;
  contentType: string;
  text: string;
}

export class UpstreamError extends Error {
  override name = "UpstreamError";
  readonly kind: "not_sent" | "unknown";
  constructor(kind: "not_sent" | "unknown", message: string) {
    super(message);
    this.kind = kind;
  }
}

const NOT_SENT = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

function codeOf(err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string } } | undefined;
  return e?.code && e.code !== "UND_ERR_SOCKET" ? e.code : (e?.cause?.code ?? e?.code ?? "");
}

export class Upstream {
  readonly #agent: Agent;
  readonly #timeoutMs: number;

  constructor(opts: { timeoutMs: number; connectionsPerServer?: number }) {
    this.#timeoutMs = opts.timeoutMs;
    this.#agent = new Agent({
      connections: opts.connectionsPerServer ?? 64,
      keepAliveTimeout: 30_000,
      connect: { timeout: Math.min(10_000, opts.timeoutMs) },
    });
  }

  async send(
    method: string,
    url: string,
    opts: { body?: string; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<UpstreamAnswer> {
    const headers: Record<string, string> = {
      accept: "application/json",
      // Livy refuses writes without it when its CSRF protection is on; any value will do
      "x-requested-by": "livy-gateway",
      ...opts.headers,
    };
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    const signals = [AbortSignal.timeout(this.#timeoutMs)];
    if (opts.signal) signals.push(opts.signal);
    let res: Dispatcher.ResponseData;
    try {
      res = await requestUrl(this.#agent, url, {
        method: method as "GET",
        headers,
        body: opts.body,
        signal: AbortSignal.any(signals),
      });
    } catch (err) {
      const code = codeOf(err);
      throw new UpstreamError(
        NOT_SENT.has(code) ? "not_sent" : "unknown",
        `${code || "error"}: ${String(err)}`,
      );
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw new UpstreamError("unknown", `answer cut short: ${String(err)}`);
    }
    const ct = res.headers["content-type"];
    return {
      status: res.statusCode,
      contentType: (Array.isArray(ct) ? ct[0] : ct) ?? "application/json;charset=utf-8",
      text,
    };
  }

  /**
   * A GET whose answer is passed on as it comes (the Spark UI: HTML, scripts, images), on the same agent.
   * Throws UpstreamError when no answer came.
   */
  async stream(
    url: string,
    opts: { headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Readable }> {
    const signals = [AbortSignal.timeout(this.#timeoutMs)];
    if (opts.signal) signals.push(opts.signal);
    try {
      const res = await requestUrl(this.#agent, url, {
        method: "GET",
        headers: opts.headers ?? {},
        signal: AbortSignal.any(signals),
      });
      return { status: res.statusCode, headers: res.headers, body: res.body };
    } catch (err) {
      const code = codeOf(err);
      throw new UpstreamError(
        NOT_SENT.has(code) ? "not_sent" : "unknown",
        `${code || "error"}: ${String(err)}`,
      );
    }
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}
