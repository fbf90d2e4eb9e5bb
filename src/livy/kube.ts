/**
 * Reaching a Livy session through its LivySession resource (the package's `./kube` entry point, so the
 * main client stays free of Kubernetes): read the endpoint from the status, wake a session the operator
 * tore down for idleness (the demand annotation), and wait for Ready through a watch.
 */
import { ANNOTATION_DEMANDED_AT, GROUP, type LivySessionStatus, PLURAL, VERSION } from "../api/index.ts";
import { type KubeClient, type KubeObject, type ResourceType, resourcePath } from "../kube/client.ts";
import { LivyClient, type LivyClientOptions } from "./client.ts";
import { LivyError } from "./errors.ts";
import type { InteractiveSession, SessionOptions } from "./session.ts";
import { Deadline, raceSignal, sleep, type WaitOptions } from "./wait.ts";

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

/** The LivySession cannot become Ready without someone changing it: failed, suspended, being deleted. */
export class LivySessionNotReadyError extends LivyError {
  readonly namespace: string;
  readonly resourceName: string;
  readonly phase: string | undefined;
  readonly reason: string | undefined;

  constructor(namespace: string, name: string, status: LivySessionStatus | undefined, why: string) {
    const ready = status?.conditions?.find((c) => c.type === "Ready");
    super(
      "LIVY_SESSION_NOT_USABLE",
      `LivySession ${namespace}/${name} ${why}${ready?.reason ? ` (${ready.reason}: ${ready.message ?? ""})` : ""}`,
    );
    this.namespace = namespace;
    this.resourceName = name;
    this.phase = status?.phase;
    this.reason = ready?.reason;
  }
}

/** The endpoint when the LivySession is Ready, otherwise null. */
export function endpointOf(
  namespace: string,
  name: string,
  obj: LivySessionObject,
): LivySessionEndpoint | null {
  const s = obj.status;
  const ready = s?.conditions?.find((c) => c.type === "Ready")?.status === "True";
  if (!ready || !s?.serverURL || s.livySessionId === undefined) return null;
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
  const phase = obj.status?.phase;
  if (phase === "Failed") return "has failed";
  if (phase === "Suspended") return "is suspended (spec.suspend is true)";
  return null;
}

function isIdle(obj: LivySessionObject): boolean {
  return obj.status?.conditions?.some((c) => c.type === "Idle" && c.status === "True") ?? false;
}

export interface ResolveOptions extends WaitOptions {
  /** Sets the demand annotation when the session was torn down for idleness. Default true. */
  wake?: boolean;
}

/** Reads the LivySession once. */
export async function getLivySession(
  kube: KubeClient,
  namespace: string,
  name: string,
  opts: WaitOptions = {},
): Promise<LivySessionObject> {
  return kube.get<LivySessionObject>(resourcePath(LIVYSESSION_RESOURCE, namespace, name), {
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
  });
}

/** A demand: the operator starts the session again after an idle teardown (what `livyctl wake` does). */
export async function wakeLivySession(kube: KubeClient, namespace: string, name: string): Promise<void> {
  await kube.mergePatch(resourcePath(LIVYSESSION_RESOURCE, namespace, name), {
    metadata: { annotations: { [ANNOTATION_DEMANDED_AT]: new Date().toISOString() } },
  });
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
      // The watch returns when the object changed in a way that decides the wait, or when the server ends
      // it (watches time out); then read again, as a level-triggered loop does.
      const from = obj.metadata?.resourceVersion;
      const decided = await raceSignal(watchUntilDecided(kube, namespace, name, from, signal), signal);
      if (!decided) await sleep(Math.min(1_000, 100 * 2 ** attempt), signal);
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

export interface ConnectOptions extends ResolveOptions {
  client?: Omit<LivyClientOptions, "baseUrl">;
  session?: SessionOptions;
}

/** Resolves (and wakes) a LivySession, then opens a client and a session view on it. Close the client after use. */
export async function connectLivySession(
  kube: KubeClient,
  namespace: string,
  name: string,
  opts: ConnectOptions = {},
): Promise<{ endpoint: LivySessionEndpoint; client: LivyClient; session: InteractiveSession }> {
  const endpoint = await resolveLivySession(kube, namespace, name, opts);
  const client = new LivyClient({ ...opts.client, baseUrl: endpoint.serverURL });
  return { endpoint, client, session: client.session(endpoint.sessionId, opts.session) };
}
