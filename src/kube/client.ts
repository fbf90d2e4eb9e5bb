import type { RequestOptions } from "node:https";
import { Agent, type Dispatcher, requestUrl } from "../util/undici.ts";
import { KubeConfig, type KubeConfigLike } from "./config.ts";

export { KubeConfig, type KubeConfigLike } from "./config.ts";

/**
 * A thin Kubernetes REST client on one keep-alive undici Agent. The kubeconfig is read by ./config.ts
 * (@kubernetes/client-node only for plugin credentials); the library's generated APIs create a new
 * dispatcher for every request (a TLS handshake each time): at a thousand sessions that was the operator's
 * main cost, so requests go through this client instead.
 */
export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string;
  readonly details: unknown;
  constructor(status: number, reason: string, message: string, details?: unknown) {
    super(message);
    this.name = "KubeApiError";
    this.status = status;
    this.reason = reason;
    this.details = details;
  }
  get isNotFound(): boolean {
    return this.status === 404;
  }
  get isConflict(): boolean {
    return this.status === 409;
  }
  get isGone(): boolean {
    return this.status === 410;
  }
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
    deletionTimestamp?: string | Date;
    creationTimestamp?: string | Date;
    ownerReferences?: Array<{
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
      blockOwnerDeletion?: boolean;
    }>;
  };
}

export interface KubeList<T> {
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}

export interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOpts {
  query?: Query;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal | undefined;
  timeoutMs?: number | undefined;
}

/**
 * Loads the kubeconfig like kubectl does, refusing the silent fallback to http://localhost:8080.
 * `context` selects a context other than the file's current one (kubectl's --context).
 */
export function loadKubeConfig(path?: string, opts: { context?: string } = {}): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  if (opts.context !== undefined) {
    if (!kc.getContextObject(opts.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new Error(
        `context "${opts.context}" is not in the kubeconfig (its contexts: ${known.join(", ") || "none"})`,
      );
    }
    kc.setCurrentContext(opts.context);
  }
  const server = kc.getCurrentCluster()?.server;
  if (!server || /^https?:\/\/localhost:8080\/?$/.test(server)) {
    throw new Error(
      "no usable kubeconfig: set KUBECONFIG, pass --kubeconfig, or run in a cluster with a service account " +
        `(the loaded configuration points at ${server ?? "nothing"}, the client library's fallback, not a real cluster)`,
    );
  }
  return kc;
}

export class KubeClient {
  readonly kubeConfig: KubeConfigLike;
  readonly server: string;
  private readonly agent: Agent;
  /** The TLS options of the connection to the API server (CA, client certificate), for other clients. */
  readonly tls: {
    ca?: string | Buffer;
    cert?: string | Buffer;
    key?: string | Buffer;
    rejectUnauthorized: boolean;
    servername?: string;
  };
  private headers: Record<string, string> = {};
  private headersAt = 0;
  /** Requests sent, by verb: the scale benchmark reads it. */
  readonly requestCounts: Record<string, number> = {};

  static async create(kc: KubeConfigLike, opts: { connections?: number } = {}): Promise<KubeClient> {
    const https: RequestOptions = {};
    await kc.applyToHTTPSOptions(https);
    return new KubeClient(kc, https, opts.connections ?? 32);
  }

  private constructor(kc: KubeConfigLike, https: RequestOptions, connections: number) {
    this.kubeConfig = kc;
    const server = kc.getCurrentCluster()?.server;
    if (!server) throw new Error("kubeconfig has no current cluster");
    this.server = server.replace(/\/$/, "");
    const skipTls = kc.getCurrentCluster()?.skipTLSVerify === true;
    this.tls = {
      ...(https.ca ? { ca: https.ca as string | Buffer } : {}),
      ...(https.cert ? { cert: https.cert as string | Buffer } : {}),
      ...(https.key ? { key: https.key as string | Buffer } : {}),
      rejectUnauthorized: !skipTls,
      ...(https.servername ? { servername: https.servername } : {}),
    };
    this.agent = new Agent({ connections, keepAliveTimeout: 30_000, connect: { ...this.tls } });
  }

  /**
   * The Authorization header this client sends to the API server (a bearer token, possibly from an exec
   * plugin and refreshed, or Basic), or undefined with client certificates only: for a client that goes
   * through the API server with the same identity (src/livy/kube.ts, apiServerRoute).
   */
  async authorization(): Promise<string | undefined> {
    const h = await this.authHeaders();
    return h.authorization ?? h.Authorization;
  }

  /** Auth headers (bearer tokens rotate in a cluster): refreshed once a minute. */
  private async authHeaders(): Promise<Record<string, string>> {
    if (Date.now() - this.headersAt > 60_000) {
      const opts: RequestOptions = {};
      await this.kubeConfig.applyToHTTPSOptions(opts);
      const h: Record<string, string> = {};
      for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) h[k] = String(v);
      if (opts.auth) h.authorization = `Basic ${Buffer.from(opts.auth).toString("base64")}`;
      this.headers = h;
      this.headersAt = Date.now();
    }
    return this.headers;
  }

  url(path: string, query?: Query): string {
    const u = new URL(this.server + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
  }

  async request<T>(method: Dispatcher.HttpMethod, path: string, opts: RequestOpts = {}): Promise<T> {
    this.requestCounts[method] = (this.requestCounts[method] ?? 0) + 1;
    const headers: Record<string, string> = { accept: "application/json", ...(await this.authHeaders()) };
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers["content-type"] = opts.contentType ?? "application/json";
    }
    const signals = [AbortSignal.timeout(Math.max(1, Math.ceil(opts.timeoutMs ?? 30_000)))];
    if (opts.signal) signals.push(opts.signal);
    const signal = AbortSignal.any(signals);
    for (let attempt = 0; ; attempt++) {
      const res = await requestUrl(this.agent, this.url(path, opts.query), {
        method,
        headers,
        body,
        signal,
      });
      const text = await res.body.text();
      // 429: the API server (priority and fairness) did not process the request and says when to come
      // back; any verb may be sent again, as client-go does
      if (res.statusCode === 429 && attempt < MAX_429_RETRIES) {
        await sleep(retryAfterMs(res.headers["retry-after"]), signal);
        continue;
      }
      if (res.statusCode >= 400) throw toApiError(res.statusCode, text);
      return (text ? JSON.parse(text) : {}) as T;
    }
  }

  get<T>(path: string, opts?: RequestOpts): Promise<T> {
    return this.request<T>("GET", path, opts);
  }

  /** GET that answers null on 404. */
  async getOrNull<T>(path: string, opts?: RequestOpts): Promise<T | null> {
    try {
      return await this.get<T>(path, opts);
    } catch (err) {
      if (err instanceof KubeApiError && err.isNotFound) return null;
      throw err;
    }
  }

  /** Server-side apply with a stable field manager; force takes ownership of fields we declare. */
  apply<T>(
    path: string,
    obj: unknown,
    fieldManager: string,
    opts: { force?: boolean; dryRun?: boolean; signal?: AbortSignal | undefined } = {},
  ): Promise<T> {
    return this.request<T>("PATCH", path, {
      body: obj,
      contentType: "application/apply-patch+yaml",
      query: { fieldManager, force: opts.force ?? true, dryRun: opts.dryRun ? "All" : undefined },
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  }

  mergePatch<T>(
    path: string,
    patch: unknown,
    query?: Query,
    opts: Pick<RequestOpts, "signal" | "timeoutMs"> = {},
  ): Promise<T> {
    return this.request<T>("PATCH", path, {
      body: patch,
      contentType: "application/merge-patch+json",
      query,
      ...opts,
    });
  }

  create<T>(
    path: string,
    obj: unknown,
    query?: Query,
    opts: Pick<RequestOpts, "signal" | "timeoutMs"> = {},
  ): Promise<T> {
    return this.request<T>("POST", path, { body: obj, query, ...opts });
  }

  /** DELETE that treats 404 as done. */
  async delete(
    path: string,
    opts: {
      propagationPolicy?: "Background" | "Foreground" | "Orphan";
      signal?: AbortSignal | undefined;
    } = {},
  ): Promise<boolean> {
    try {
      await this.request("DELETE", path, {
        body: {
          kind: "DeleteOptions",
          apiVersion: "v1",
          propagationPolicy: opts.propagationPolicy ?? "Background",
        },
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.isNotFound) return false;
      throw err;
    }
  }

  /**
   * Streams a watch, calling `onEvent` per event, until the server closes it (resolves), it fails (rejects),
   * or `signal` aborts (resolves). The caller owns restarting it.
   */
  async watch<T>(
    path: string,
    query: Query,
    onEvent: (e: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    this.requestCounts.WATCH = (this.requestCounts.WATCH ?? 0) + 1;
    const res = await requestUrl(this.agent, this.url(path, { ...query, watch: true }), {
      method: "GET",
      headers: { accept: "application/json", ...(await this.authHeaders()) },
      signal,
      // watches are long: the body timeout is our watchdog's job, not undici's
      bodyTimeout: 0,
      headersTimeout: 30_000,
    });
    if (res.statusCode >= 400) throw toApiError(res.statusCode, await res.body.text());
    const decoder = new WatchDecoder();
    try {
      for await (const chunk of res.body) {
        for (const e of decoder.push(chunk)) onEvent(e as WatchEvent<T>);
      }
      for (const e of decoder.end()) onEvent(e as WatchEvent<T>);
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/**
 * A watch's body, newline-delimited JSON, decoded chunk by chunk. Chunks split the bytes anywhere, inside
 * a multi-byte character too: the streaming TextDecoder keeps an incomplete character for the next chunk.
 * Decoding each chunk on its own turned `grüße` split after its first byte into `gr��ße`, a different
 * spec hash, and a Deployment re-applied and rolled under a Ready session.
 */
export class WatchDecoder {
  private readonly text = new TextDecoder("utf-8");
  private buf = "";

  push(chunk: Uint8Array): unknown[] {
    this.buf += this.text.decode(chunk, { stream: true });
    return this.lines();
  }

  /** What is left when the body ends (a last event without its newline). */
  end(): unknown[] {
    this.buf += this.text.decode();
    const rest = this.buf.trim();
    this.buf = "";
    return rest ? [JSON.parse(rest)] : [];
  }

  private lines(): unknown[] {
    const out: unknown[] = [];
    let nl = this.buf.indexOf("\n");
    while (nl >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) out.push(JSON.parse(line));
      nl = this.buf.indexOf("\n");
    }
    return out;
  }
}

/** Retries of a request the API server answered 429. */
const MAX_429_RETRIES = 4;

/** Retry-After in seconds (the API server's form) or as an HTTP date; 1 s when absent; at most 10 s, jittered. */
export function retryAfterMs(
  header: string | string[] | undefined,
  random: () => number = Math.random,
): number {
  const value = Array.isArray(header) ? header[0] : header;
  let ms = 1_000;
  if (value !== undefined && /^\d+$/.test(value.trim())) ms = Number(value.trim()) * 1_000;
  else if (value !== undefined && Number.isFinite(Date.parse(value))) ms = Date.parse(value) - Date.now();
  // spread the clients told the same second, so they do not all come back together
  return Math.round(Math.min(10_000, Math.max(0, ms)) * (1 + 0.1 * random()));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function toApiError(status: number, text: string): KubeApiError {
  try {
    const s = JSON.parse(text) as { reason?: string; message?: string; details?: unknown };
    return new KubeApiError(status, s.reason ?? "", s.message ?? text, s.details);
  } catch {
    return new KubeApiError(status, "", text.slice(0, 500) || `HTTP ${status}`);
  }
}

/** Builds REST paths: `resourcePath({group, version, plural}, ns, name, sub)`. */
export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
}

export function resourcePath(
  rt: ResourceType,
  namespace?: string,
  name?: string,
  subresource?: string,
): string {
  let p = rt.group ? `/apis/${rt.group}/${rt.version}` : `/api/${rt.version}`;
  if (rt.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${rt.plural}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

export const CORE = {
  configMaps: { group: "", version: "v1", plural: "configmaps", namespaced: true },
  services: { group: "", version: "v1", plural: "services", namespaced: true },
  pods: { group: "", version: "v1", plural: "pods", namespaced: true },
  secrets: { group: "", version: "v1", plural: "secrets", namespaced: true },
  events: { group: "", version: "v1", plural: "events", namespaced: true },
  deployments: { group: "apps", version: "v1", plural: "deployments", namespaced: true },
  leases: { group: "coordination.k8s.io", version: "v1", plural: "leases", namespaced: true },
  networkPolicies: { group: "networking.k8s.io", version: "v1", plural: "networkpolicies", namespaced: true },
  serviceAccounts: { group: "", version: "v1", plural: "serviceaccounts", namespaced: true },
  roleBindings: {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    plural: "rolebindings",
    namespaced: true,
  },
} as const satisfies Record<string, ResourceType>;
