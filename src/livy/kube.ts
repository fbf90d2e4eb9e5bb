/**
 * Reaching a Livy session through its LivySession resource (the package's `./kube` entry point, so the
 * main client stays free of Kubernetes): read the endpoint from the status, wake a session the operator
 * tore down for idleness (the demand annotation), and wait for Ready through a watch.
 */
import {
  ANNOTATION_DEMANDED_AT,
  API_VERSION,
  type AuthSpec,
  GROUP,
  isFailed,
  isIdle,
  isReady,
  isSuspended,
  KIND,
  type LivySessionSpecInput,
  type LivySessionStatus,
  type Phase,
  PLURAL,
  phaseOf,
  readyCondition,
  VERSION,
} from "../api/index.ts";
import {
  CORE,
  KubeApiError,
  type KubeClient,
  type KubeObject,
  type ResourceType,
  resourcePath,
} from "../kube/client.ts";
import { backoffDelay } from "../util/backoff.ts";
import { type LivyAuth, LivyClient, type LivyClientOptions } from "./client.ts";
import { LivyUnreachableError, SessionGoneError, SessionNotUsableError } from "./errors.ts";
import { kubeCall } from "./kube-connect.ts";
import { LivySessionNotReadyError } from "./kube-errors.ts";
import { isSessionTerminal } from "./protocol.ts";
import type { StatementResult } from "./result.ts";
import { authFromSecret, type SecretLike } from "./secret-auth.ts";
import type { InteractiveSession, SessionOptions, SubmitOptions } from "./session.ts";
import type { StatementHandle } from "./statement.ts";
import { Deadline, raceSignal, sleep, type WaitOptions } from "./wait.ts";

export {
  CORE,
  KubeApiError,
  KubeClient,
  type KubeList,
  type KubeObject,
  loadKubeConfig,
  type ResourceType,
  resourcePath,
  type WatchEvent,
} from "../kube/client.ts";
export {
  connectKube,
  type KubeConnection,
  type KubeConnectOptions,
  kubeCall,
  kubernetesError,
} from "./kube-connect.ts";
export {
  isKubeApiError,
  KubeconfigError,
  KubernetesUnreachableError,
  LivySessionNotReadyError,
} from "./kube-errors.ts";

export const LIVYSESSION_RESOURCE: ResourceType = {
  group: GROUP,
  version: VERSION,
  plural: PLURAL,
  namespaced: true,
};

interface LivySessionObject extends KubeObject {
  status?: LivySessionStatus;
}

export interface LivySessionEndpoint {
  namespace: string;
  name: string;
  /** The Livy server's base URL. */
  serverURL: string;
  /** Livy's id of the interactive session in that server. */
  sessionId: number;
}

/** The endpoint when the LivySession is Ready, otherwise null. */
export function endpointOf(
  namespace: string,
  name: string,
  obj: LivySessionObject,
): LivySessionEndpoint | null {
  const s = obj.status;
  if (!isReady(obj) || !s?.serverURL || s.livySessionId === undefined) return null;
  return {
    namespace,
    name,
    serverURL: s.serverURL,
    sessionId: s.livySessionId,
  };
}

/** Why waiting is pointless, or null while the operator may still make it Ready. */
function hopeless(obj: LivySessionObject): string | null {
  if (obj.metadata?.deletionTimestamp) return "is being deleted";
  if (isFailed(obj)) return "has failed";
  if (isSuspended(obj)) return "is suspended (spec.suspend is true)";
  return null;
}

export interface ResolveOptions extends WaitOptions {
  /** Sets the demand annotation when the session was torn down for idleness. Default true. */
  wake?: boolean;
  /**
   * Called once when the LivySession is not Ready at the first look, before the wait begins: what it is
   * waiting for (livyctl prints it).
   */
  onWait?: (info: { phase: Phase; reason: string | undefined; woken: boolean }) => void;
}

/** Reads the LivySession once. */
export async function getLivySession(
  kube: KubeClient,
  namespace: string,
  name: string,
  opts: WaitOptions = {},
): Promise<LivySessionObject> {
  return kubeCall(kube, `read LivySession ${namespace}/${name}`, () =>
    kube.get<LivySessionObject>(resourcePath(LIVYSESSION_RESOURCE, namespace, name), {
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
    }),
  );
}

/** A demand: the operator starts the session again after an idle teardown (what `livyctl wake` does). */
export async function wakeLivySession(kube: KubeClient, namespace: string, name: string): Promise<void> {
  await kubeCall(kube, `wake LivySession ${namespace}/${name}`, () =>
    kube.mergePatch(resourcePath(LIVYSESSION_RESOURCE, namespace, name), {
      metadata: { annotations: { [ANNOTATION_DEMANDED_AT]: new Date().toISOString() } },
    }),
  );
}

/**
 * The endpoint of a Ready LivySession: at once when it is Ready, else (waking it if idle) after watching it
 * become Ready. Rejects with LivySessionNotReadyError when it cannot (failed, suspended, deleting), and
 * with LivyTimeoutError/LivyAbortError when the wait ends.
 */
export async function resolveLivySession(
  kube: KubeClient,
  namespace: string,
  name: string,
  opts: ResolveOptions = {},
): Promise<LivySessionEndpoint> {
  const deadline = new Deadline(`waiting for LivySession ${namespace}/${name} to be Ready`, opts);
  const signal = deadline.signal;
  let woken = false;
  try {
    for (let attempt = 0; ; attempt++) {
      const obj = await raceSignal(getLivySession(kube, namespace, name, { signal }), signal);
      const endpoint = endpointOf(namespace, name, obj);
      if (endpoint) return endpoint;
      const why = hopeless(obj);
      if (why) throw new LivySessionNotReadyError(namespace, name, obj.status, why);
      if ((opts.wake ?? true) && !woken && isIdle(obj)) {
        await wakeLivySession(kube, namespace, name);
        woken = true;
      }
      if (attempt === 0) opts.onWait?.({ phase: phaseOf(obj), reason: readyCondition(obj)?.reason, woken });
      // The watch returns when the object changed in a way that decides the wait, or when the server ends
      // it (watches time out); then read again, as a level-triggered loop does.
      const from = obj.metadata?.resourceVersion;
      const decided = await raceSignal(watchUntilDecided(kube, namespace, name, from, signal), signal);
      if (!decided) await sleep(backoffDelay({ baseMs: 100, maxMs: 1_000 }, attempt), signal);
    }
  } finally {
    deadline.dispose();
  }
}

/** Watches one LivySession from the version just read; true once it is Ready or hopeless. */
async function watchUntilDecided(
  kube: KubeClient,
  namespace: string,
  name: string,
  resourceVersion: string | undefined,
  signal: AbortSignal,
): Promise<boolean> {
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  let decided = false;
  try {
    await kube.watch<LivySessionObject>(
      resourcePath(LIVYSESSION_RESOURCE, namespace),
      {
        fieldSelector: `metadata.name=${name}`,
        resourceVersion,
        allowWatchBookmarks: false,
        timeoutSeconds: 60,
      },
      (event) => {
        if (event.type === "DELETED" || event.type === "ERROR") {
          decided = event.type === "DELETED";
          stop.abort();
          return;
        }
        if (endpointOf(namespace, name, event.object) || hopeless(event.object)) {
          decided = true;
          stop.abort();
        }
      },
      stop.signal,
    );
  } catch {
    // A broken watch is not an answer: the caller reads the object again.
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  return decided;
}

/**
 * How the caller reaches a LivySession's Livy server. `status.serverURL` is the server's address inside the
 * cluster; a caller outside it goes through something in between (a gateway, the API server's service
 * proxy) and resolves the endpoint to that instead: the base URL, and the client options the path needs
 * (its credentials, its dispatcher). A path that may spread one connection's requests over several
 * upstream connections must set `pipelining: 1`, or a burst of statements may reach Livy out of order.
 */
export interface LivyRoute {
  baseUrl: string;
  client?: Partial<Omit<LivyClientOptions, "baseUrl">>;
  /** The session's id on this path, when not Livy's own (`endpoint.sessionId`): 0 through the gateway. */
  sessionId?: number;
}
export type RouteResolver = (endpoint: LivySessionEndpoint) => LivyRoute | Promise<LivyRoute>;

/**
 * Straight to `status.serverURL`: from inside the cluster, where its Services resolve, and only to servers
 * that do not demand the per-session credential (which only the operator and the gateway hold).
 */
export const directRoute: RouteResolver = (endpoint) => ({ baseUrl: endpoint.serverURL });

/**
 * A Service's address inside the cluster, `http(s)://SERVICE.NAMESPACE.svc[.cluster.local][:PORT]`, as the
 * API server's service proxy path (`/api/v1/namespaces/NAMESPACE/services/SCHEME:SERVICE:PORT/proxy`), or
 * null when the URL names no Service that way (a host, an IP address, a gateway).
 */
export function serviceProxyPath(serverURL: string): string | null {
  let u: URL;
  try {
    u = new URL(serverURL);
  } catch {
    return null;
  }
  const m =
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(\.cluster\.local)?\.?$/.exec(
      u.hostname,
    );
  if (!m || (u.protocol !== "http:" && u.protocol !== "https:")) return null;
  const scheme = u.protocol.slice(0, -1);
  const port = u.port || (scheme === "https" ? "443" : "80");
  const prefix = u.pathname.replace(/\/+$/, "");
  return `/api/v1/namespaces/${m[3]}/services/${scheme}:${m[1]}:${port}/proxy${prefix}`;
}

/**
 * Through the API server's service proxy, with the kubeconfig's credentials: how a caller outside the
 * cluster (a laptop, CI, the test bed's host) reaches a Livy server whose Service name only resolves inside
 * it, with nothing installed but the kubeconfig. It needs `get` on `services/proxy` in the LivySession's
 * namespace (the `edit` and `admin` roles have it) and an API server that can reach pod IPs (any cluster's
 * does). Statements are sent one after the other (`pipelining: 1`): the API server may answer one
 * connection's requests over several upstream connections. A LivySession with `spec.auth` cannot be
 * reached this way: the API server removes the Authorization header once it has authenticated the caller,
 * so Livy's own credentials never arrive (use the gateway, or `kubectl port-forward` and `--url`).
 * URLs that name no Service (serviceProxyPath) go direct.
 */
export function serviceProxyRoute(kube: KubeClient): RouteResolver {
  return async (endpoint) => {
    const path = serviceProxyPath(endpoint.serverURL);
    if (!path) return directRoute(endpoint);
    const https: import("node:https").RequestOptions = {};
    await kube.kubeConfig.applyToHTTPSOptions(https);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(https.headers ?? {}))
      if (v !== undefined) headers[k.toLowerCase()] = String(v);
    if (https.auth) headers.authorization = `Basic ${Buffer.from(https.auth).toString("base64")}`;
    const skipTls = kube.kubeConfig.getCurrentCluster()?.skipTLSVerify === true;
    return {
      baseUrl: kube.server + path,
      client: {
        headers,
        pipelining: 1,
        tls: {
          ...(https.ca ? { ca: https.ca as string | Buffer } : {}),
          ...(https.cert ? { cert: https.cert as string | Buffer } : {}),
          ...(https.key ? { key: https.key as string | Buffer } : {}),
          ...(https.servername ? { servername: https.servername } : {}),
          rejectUnauthorized: !skipTls,
        },
      },
    };
  };
}

/** The gateway as an aggregated API version of livy.dev (the chart's APIService gateway.livy.dev). */
export const GATEWAY_API_PATH = `/apis/${GROUP}/gateway`;

/**
 * Through the API server to the gateway (docs/gateway.md, "Two doors"): the API server authenticates the
 * caller with whatever the kubeconfig holds (client certificate, token, exec plugin), RBAC decides
 * (`livysessions/proxy`), and the gateway wakes the session if need be. Works from anywhere the API server
 * is reachable. The session is id 0 there. `pipelining: 1`: the API server's proxy may spread one
 * connection's requests over several upstream connections, and a statement burst must keep its order.
 */
export function apiServerRoute(kube: KubeClient): RouteResolver {
  return async (endpoint) => {
    const { namespace, name } = endpoint;
    // a kubeconfig with a token (refreshed by its exec plugin, per request); with client certificates only,
    // the TLS handshake is the identity and no header is sent
    const bearer = (await kube.authorization())?.match(/^Bearer\s+(.+)$/i);
    return {
      baseUrl: `${kube.server}${GATEWAY_API_PATH}/namespaces/${encodeURIComponent(namespace)}/livysessions/${encodeURIComponent(name)}/proxy`,
      sessionId: 0,
      client: {
        pipelining: 1,
        ...(kube.server.startsWith("https:") ? { tls: { ...kube.tls } } : {}),
        ...(bearer
          ? {
              auth: {
                type: "bearer" as const,
                token: async () =>
                  (await kube.authorization())?.replace(/^Bearer\s+/i, "") ?? (bearer[1] as string),
              },
            }
          : {}),
      },
    };
  };
}

const gatewayServed = new WeakMap<KubeClient, Promise<boolean>>();

/**
 * Whether the API server serves the gateway's API version (its APIService is registered and available):
 * asked once per client. 404: not installed. Registered but not answering (503): an error that says so,
 * rather than a silent fallback to a path that servers with credentials refuse.
 */
export function gatewayThroughApiServer(kube: KubeClient): Promise<boolean> {
  let served = gatewayServed.get(kube);
  if (!served) {
    served = kubeCall(kube, `discover ${GATEWAY_API_PATH}`, async () => {
      try {
        await kube.request("GET", GATEWAY_API_PATH, { timeoutMs: 10_000 });
        return true;
      } catch (err) {
        if (err instanceof KubeApiError && err.status === 404) return false;
        if (err instanceof KubeApiError && err.status === 503)
          throw new KubeApiError(
            503,
            err.reason,
            `the APIService gateway.livy.dev is registered but not available (is the gateway running? ` +
              `kubectl get apiservice gateway.livy.dev): ${err.message}`,
          );
        throw err;
      }
    });
    gatewayServed.set(kube, served);
    served.catch(() => gatewayServed.delete(kube));
  }
  return served;
}

/** True when the client uses a pod's service account (client-node's in-cluster configuration). */
export function inCluster(kube: KubeClient): boolean {
  return kube.kubeConfig.getCurrentContext() === "inClusterContext";
}

/**
 * The default route: through the API server to the gateway when the cluster serves it (apiServerRoute:
 * the one way into servers that demand the per-session credential, and RBAC per LivySession); otherwise
 * direct inside the cluster, where `status.serverURL` resolves, and outside it through the API server's
 * service proxy (serviceProxyRoute), which needs only the kubeconfig.
 */
export function defaultRoute(kube: KubeClient): RouteResolver {
  return async (endpoint) => {
    if (await gatewayThroughApiServer(kube)) return apiServerRoute(kube)(endpoint);
    return (inCluster(kube) ? directRoute : serviceProxyRoute(kube))(endpoint);
  };
}

export interface ConnectOptions extends ResolveOptions {
  client?: Omit<LivyClientOptions, "baseUrl">;
  session?: SessionOptions;
  /**
   * How to reach the endpoint; default defaultRoute(kube): the gateway through the API server when served,
   * else direct in the cluster and the API server's service proxy outside it.
   */
  route?: RouteResolver;
}

/**
 * The credentials a LivySession's `spec.auth` names, read from its Secret (the same mapping the operator
 * uses), or undefined when it sets none. Reading the Secret needs `get` on secrets in that namespace.
 */
export async function livySessionAuth(
  kube: KubeClient,
  namespace: string,
  name: string,
): Promise<LivyAuth | undefined> {
  const obj = await kubeCall(kube, `read LivySession ${namespace}/${name}`, () =>
    kube.getOrNull<{ spec?: { auth?: AuthSpec } }>(resourcePath(LIVYSESSION_RESOURCE, namespace, name)),
  );
  const auth = obj?.spec?.auth;
  if (!auth) return undefined;
  const secret = await kubeCall(kube, `read Secret ${namespace}/${auth.secretName}`, () =>
    kube.getOrNull<SecretLike>(resourcePath(CORE.secrets, namespace, auth.secretName)),
  );
  return authFromSecret(auth, secret);
}

/** Resolves (and wakes) a LivySession, then opens a client and a session view on it. Close the client after use. */
export async function connectLivySession(
  kube: KubeClient,
  namespace: string,
  name: string,
  opts: ConnectOptions = {},
): Promise<{ endpoint: LivySessionEndpoint; client: LivyClient; session: InteractiveSession }> {
  const endpoint = await resolveLivySession(kube, namespace, name, opts);
  const route = await (opts.route ?? defaultRoute(kube))(endpoint);
  // a route with credentials of its own (the API server's) needs no spec.auth Secret
  const auth = route.client?.auth ?? opts.client?.auth ?? (await livySessionAuth(kube, namespace, name));
  const client = new LivyClient({
    ...opts.client,
    ...(auth ? { auth } : {}),
    ...route.client,
    baseUrl: route.baseUrl,
  });
  return { endpoint, client, session: client.session(route.sessionId ?? endpoint.sessionId, opts.session) };
}

export interface StartLivySessionOptions extends ConnectOptions {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Leave the LivySession in place when disposed (only the client is closed). Default false. */
  keep?: boolean;
}

/** A LivySession created by startLivySession: disposing it closes the client and deletes the resource. */
export interface StartedLivySession {
  namespace: string;
  name: string;
  endpoint: LivySessionEndpoint;
  client: LivyClient;
  session: InteractiveSession;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Creates a LivySession, waits until it is Ready, and connects to it; disposing the result deletes it (the
 * operator then deletes the Livy session and the server):
 *
 * ```ts
 * await using ws = await startLivySession(kube, "data-prep", "scratch", { kind: "pyspark" }, { timeoutMs: 600_000 });
 * console.log((await ws.session.run("spark.range(10).count()")).text);
 * ```
 * The spec is checked by the API server (a 422 names the field). If it does not become Ready in time, the
 * LivySession is deleted before the error is thrown.
 */
export async function startLivySession(
  kube: KubeClient,
  namespace: string,
  name: string,
  spec: LivySessionSpecInput,
  opts: StartLivySessionOptions = {},
): Promise<StartedLivySession> {
  const path = resourcePath(LIVYSESSION_RESOURCE, namespace, name);
  await kubeCall(kube, `create LivySession ${namespace}/${name}`, () =>
    kube.create(resourcePath(LIVYSESSION_RESOURCE, namespace), {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: {
        name,
        namespace,
        ...(opts.labels ? { labels: opts.labels } : {}),
        ...(opts.annotations ? { annotations: opts.annotations } : {}),
      },
      spec,
    }),
  );
  const remove = () => kubeCall(kube, `delete LivySession ${namespace}/${name}`, () => kube.delete(path));
  let connected: Awaited<ReturnType<typeof connectLivySession>>;
  try {
    connected = await connectLivySession(kube, namespace, name, opts);
  } catch (err) {
    await remove().catch(() => {});
    throw err;
  }
  let disposed = false;
  return {
    namespace,
    name,
    ...connected,
    async [Symbol.asyncDispose]() {
      if (disposed) return;
      disposed = true;
      await connected.client.close();
      if (!opts.keep) await remove();
    },
  };
}

/**
 * A LivySession as a target that outlives its endpoints: the operator tears servers down when idle and
 * recreates them on demand, with a new URL or session id. `submit` uses the current endpoint and, when it
 * is gone (Livy answers 404 for the session, reports it dead, or does not answer at all), resolves the
 * LivySession again (waking it) and submits there once more. Statements in flight on a lost endpoint are
 * not moved: they are lost with it and their results reject.
 */
export class LivySessionTarget {
  readonly namespace: string;
  readonly name: string;
  readonly #kube: KubeClient;
  readonly #opts: ConnectOptions;
  #current: { endpoint: LivySessionEndpoint; client: LivyClient; session: InteractiveSession } | undefined;
  #resolving:
    | Promise<{ endpoint: LivySessionEndpoint; client: LivyClient; session: InteractiveSession }>
    | undefined;

  constructor(kube: KubeClient, namespace: string, name: string, opts: ConnectOptions = {}) {
    this.#kube = kube;
    this.namespace = namespace;
    this.name = name;
    this.#opts = opts;
  }

  /** The endpoint in use, once one was resolved. */
  get endpoint(): LivySessionEndpoint | undefined {
    return this.#current?.endpoint;
  }

  /** The current session view, resolving (and waking) the LivySession when there is none. */
  async session(opts: WaitOptions = {}): Promise<InteractiveSession> {
    return (await this.#connection(opts)).session;
  }

  async submit(code: string, options: SubmitOptions = {}): Promise<StatementHandle> {
    const first = await this.#connection(options);
    try {
      return await first.session.submit(code, options);
    } catch (err) {
      if (!endpointLost(err)) throw err;
      // Only if nobody replaced it meanwhile: concurrent submitters share one re-resolution.
      if (this.#current === first) await this.#drop();
      const next = await this.#connection(options);
      return next.session.submit(code, options);
    }
  }

  async run(code: string, options: SubmitOptions = {}): Promise<StatementResult> {
    return (await this.submit(code, options)).result;
  }

  async close(): Promise<void> {
    await this.#drop();
  }

  async #connection(opts: WaitOptions) {
    if (this.#current) return this.#current;
    this.#resolving ??= connectLivySession(this.#kube, this.namespace, this.name, {
      ...this.#opts,
      ...(opts.signal ? { signal: opts.signal } : {}),
    }).finally(() => {
      this.#resolving = undefined;
    });
    this.#current = await this.#resolving;
    return this.#current;
  }

  async #drop(): Promise<void> {
    const old = this.#current;
    this.#current = undefined;
    await old?.client.close();
  }
}

/** Errors after which the endpoint will not work again: the LivySession must be resolved anew. */
function endpointLost(err: unknown): boolean {
  if (err instanceof SessionGoneError) return true;
  if (err instanceof SessionNotUsableError) return isSessionTerminal(err.state) || err.state === "inactive";
  return err instanceof LivyUnreachableError && !err.requestSent;
}
