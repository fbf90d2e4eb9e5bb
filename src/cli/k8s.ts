/**
 * livyctl's Kubernetes side: the connection (kubeconfig, context, namespace as kubectl picks them) and the
 * LivySession commands (get, describe, create, delete, wake, suspend, resume, logs). Loaded only when a
 * command needs Kubernetes: the Kubernetes client costs startup time that plain Livy use should not pay.
 */
import { readFile } from "node:fs/promises";
import { parseAllDocuments } from "yaml";
import { parseDuration } from "../api/duration.ts";
import { API_VERSION, KIND, type LivySession, parseLivySession, phaseOf } from "../api/index.ts";
import { LivyClient } from "../livy/client.ts";
import { LivyTimeoutError } from "../livy/errors.ts";
import {
  apiServerRoute,
  CORE,
  connectKube,
  directRoute,
  gatewayThroughApiServer,
  getLivySession,
  inCluster,
  type KubeConnection,
  kubeCall,
  LIVYSESSION_RESOURCE,
  LivySessionNotReadyError,
  livySessionAuth,
  resolveLivySession,
  resourcePath,
  serviceProxyRoute,
  wakeLivySession,
} from "../livy/kube.ts";
import { sleep } from "../livy/wait.ts";
import { type EventLike, UsageError } from "./render.ts";

export interface KubeFlags {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
}

export type Kube = KubeConnection;

export async function kubernetes(flags: KubeFlags): Promise<Kube> {
  return connectKube({
    kubeconfig: flags.kubeconfig,
    context: flags.context,
    namespace: flags.namespace,
  });
}

/** `NAME` in the current namespace, or `NAMESPACE/NAME`. */
export function target(k: Kube, ref: string): { namespace: string; name: string } {
  const parts = ref.split("/");
  if (parts.length > 2 || parts.some((p) => p === ""))
    throw new UsageError(`expected NAME or NAMESPACE/NAME, got ${JSON.stringify(ref)}`);
  return parts.length === 2
    ? { namespace: parts[0] as string, name: parts[1] as string }
    : { namespace: k.namespace, name: ref };
}

type Obj = LivySession & { metadata: LivySession["metadata"] & { resourceVersion?: string } };

export async function listLivySessions(
  k: Kube,
  opts: { allNamespaces?: boolean; selector?: string },
): Promise<Obj[]> {
  const path = resourcePath(LIVYSESSION_RESOURCE, opts.allNamespaces ? undefined : k.namespace);
  const list = await kubeCall(k.kube, "list LivySessions", () =>
    k.kube.get<{ items: Obj[] }>(path, { query: { labelSelector: opts.selector } }),
  );
  return list.items;
}

export async function getLivySessions(k: Kube, refs: string[]): Promise<Obj[]> {
  const out: Obj[] = [];
  for (const ref of refs) {
    const { namespace, name } = target(k, ref);
    out.push((await getLivySession(k.kube, namespace, name)) as Obj);
  }
  return out;
}

export async function eventsOf(k: Kube, namespace: string, name: string): Promise<EventLike[]> {
  const list = await kubeCall(k.kube, `list events of ${namespace}/${name}`, () =>
    k.kube.get<{ items: EventLike[] }>(resourcePath(CORE.events, namespace), {
      query: { fieldSelector: `involvedObject.kind=${KIND},involvedObject.name=${name}` },
    }),
  );
  const when = (e: EventLike) =>
    new Date(
      e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp ?? 0,
    ).getTime();
  return list.items.sort((a, b) => when(a) - when(b)).slice(-20);
}

export interface CreateFlags {
  kind?: string;
  idleTimeout?: string;
  startupTimeout?: string;
  failurePolicy?: string;
  maxRestarts?: string;
  suspend?: boolean;
  image?: string;
  driverMemory?: string;
  executorMemory?: string;
  conf?: string[];
  filename?: string;
}

/** The object `create` sends: from -f (YAML or JSON, '-' for stdin) or from flags. */
export async function objectToCreate(k: Kube, name: string | undefined, f: CreateFlags): Promise<Obj> {
  if (f.filename !== undefined) {
    const text = f.filename === "-" ? await readStdin() : await readFile(f.filename, "utf8");
    const docs = parseAllDocuments(text).filter((d) => d.contents !== null);
    if (docs.length !== 1)
      throw new UsageError(`${f.filename}: expected one LivySession, found ${docs.length} documents`);
    const doc = docs[0];
    if (doc?.errors.length) throw new UsageError(`${f.filename}: not valid YAML: ${doc.errors[0]?.message}`);
    const obj = doc?.toJS() as Obj;
    if (obj?.kind !== KIND)
      throw new UsageError(`${f.filename}: kind is ${obj?.kind ?? "missing"}, expected ${KIND}`);
    obj.metadata = { ...obj.metadata, namespace: obj.metadata?.namespace ?? k.namespace };
    if (name !== undefined) obj.metadata.name = name;
    if (!obj.metadata.name) throw new UsageError(`${f.filename}: metadata.name is missing`);
    return obj;
  }
  if (name === undefined) throw new UsageError("create needs a NAME or -f FILE");
  const { namespace, name: n } = target(k, name);
  const conf: Record<string, string> = {};
  for (const kv of f.conf ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`--conf: expected KEY=VALUE, got ${JSON.stringify(kv)}`);
    conf[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const session = {
    ...(f.driverMemory ? { driverMemory: f.driverMemory } : {}),
    ...(f.executorMemory ? { executorMemory: f.executorMemory } : {}),
    ...(Object.keys(conf).length ? { conf } : {}),
  };
  const spec: Record<string, unknown> = {
    ...(f.kind ? { kind: f.kind } : {}),
    ...(f.idleTimeout ? { idleTimeout: f.idleTimeout } : {}),
    ...(f.startupTimeout ? { startupTimeout: f.startupTimeout } : {}),
    ...(f.failurePolicy ? { failurePolicy: f.failurePolicy } : {}),
    ...(f.maxRestarts !== undefined ? { maxRestarts: Number(f.maxRestarts) } : {}),
    ...(f.suspend ? { suspend: true } : {}),
    ...(f.image ? { server: { image: f.image } } : {}),
    ...(Object.keys(session).length ? { session } : {}),
  };
  const obj = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: n, namespace },
    spec,
  } as unknown as Obj;
  // The same parser the operator uses: a bad flag is a usage error named by field before anything is sent.
  const parsed = parseLivySession(obj);
  if (!parsed.success) throw new UsageError(`invalid LivySession: ${parsed.message}`);
  return obj;
}

export async function createLivySession(k: Kube, obj: Obj): Promise<Obj> {
  const ns = obj.metadata.namespace ?? k.namespace;
  return kubeCall(k.kube, `create LivySession ${ns}/${obj.metadata.name}`, () =>
    k.kube.create<Obj>(resourcePath(LIVYSESSION_RESOURCE, ns), obj),
  );
}

/** Deletes, and with `wait` waits until it is gone (the operator's finalizer deletes the Livy session first). */
export async function deleteLivySession(
  k: Kube,
  ref: string,
  opts: { wait: boolean; timeoutMs: number },
): Promise<boolean> {
  const { namespace, name } = target(k, ref);
  const path = resourcePath(LIVYSESSION_RESOURCE, namespace, name);
  const existed = await kubeCall(k.kube, `delete LivySession ${namespace}/${name}`, () =>
    k.kube.delete(path),
  );
  if (!existed) {
    const { KubeApiError } = await import("../kube/client.ts");
    throw new KubeApiError(
      404,
      "NotFound",
      `livysessions.livy.dev "${name}" not found in namespace ${namespace}`,
    );
  }
  if (!opts.wait) return true;
  const deadline = Date.now() + opts.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const obj = await kubeCall(k.kube, `read LivySession ${namespace}/${name}`, () =>
      k.kube.getOrNull<Obj>(path),
    );
    if (!obj) return true;
    if (Date.now() > deadline)
      throw new LivyTimeoutError(
        `deleting LivySession ${namespace}/${name} (its finalizer waits for the operator to delete the Livy session: is the operator running?)`,
        opts.timeoutMs,
      );
    await sleep(Math.min(1_000, 100 * 2 ** attempt));
  }
}

export async function setSuspend(k: Kube, ref: string, suspend: boolean): Promise<Obj> {
  const { namespace, name } = target(k, ref);
  return kubeCall(k.kube, `${suspend ? "suspend" : "resume"} LivySession ${namespace}/${name}`, () =>
    k.kube.mergePatch<Obj>(resourcePath(LIVYSESSION_RESOURCE, namespace, name), { spec: { suspend } }),
  );
}

export interface Endpoint {
  client: LivyClient;
  sessionId: number;
  namespace: string;
  name: string;
}

/**
 * A client on a LivySession's Livy session. `waitMs` 0: it must be Ready now (exit 3 otherwise, saying
 * what it is and how to wait); more: wake it when idle and wait that long, saying so on stderr.
 */
export async function endpointOf(
  k: Kube,
  ref: string,
  opts: {
    waitMs: number;
    signal: AbortSignal;
    token: string | undefined;
    /** auto: through the API server to the gateway when it is served there, else direct. */
    route?: "auto" | "apiserver" | "service-proxy" | "direct";
    clientOptions: { timeoutMs: number };
    say: (line: string) => void;
  },
): Promise<Endpoint> {
  const { namespace, name } = target(k, ref);
  if (opts.waitMs === 0) {
    const obj = await getLivySession(k.kube, namespace, name);
    const phase = phaseOf(obj);
    if (phase !== "Ready") {
      const hint =
        phase === "Idle"
          ? "it was torn down after its idleTimeout: `wake` it, or pass --wait 5m to wake it and wait"
          : phase === "Failed" || phase === "Suspended" || phase === "Terminating"
            ? undefined
            : "pass --wait 5m to wait until it is";
      throw new LivySessionNotReadyError(
        namespace,
        name,
        obj.status,
        `is ${phase}, not Ready${hint ? ` (${hint})` : ""}`,
      );
    }
  }
  const endpoint = await resolveLivySession(k.kube, namespace, name, {
    signal: opts.signal,
    // Ready at the look above: it answers at once (the bound covers a change in between)
    timeoutMs: opts.waitMs === 0 ? 10_000 : opts.waitMs,
    onWait: ({ phase, reason, woken }) =>
      opts.say(
        `LivySession ${namespace}/${name} is ${phase}${reason ? ` (${reason})` : ""}${woken ? ": woken" : ""}; ` +
          `waiting up to ${formatMs(opts.waitMs)} for Ready`,
      ),
  });
  const via = opts.route ?? "auto";
  // --token is a credential for Livy itself: it goes straight to the server
  const apiserver =
    via === "apiserver" || (via === "auto" && !opts.token && (await gatewayThroughApiServer(k.kube)));
  if (apiserver) {
    const route = await apiServerRoute(k.kube)(endpoint);
    const client = new LivyClient({ ...opts.clientOptions, ...route.client, baseUrl: route.baseUrl });
    return { client, sessionId: route.sessionId ?? endpoint.sessionId, namespace, name };
  }
  const auth = opts.token ? undefined : await livySessionAuth(k.kube, namespace, name);
  // without the gateway: in a pod, straight to the Service in status; elsewhere through the API server's
  // service proxy with the kubeconfig's credentials (docs/client.md#reaching-a-session-from-outside-the-cluster)
  const route = await (via === "direct" || (via === "auto" && inCluster(k.kube))
    ? directRoute
    : serviceProxyRoute(k.kube))(endpoint);
  const client = new LivyClient({
    ...opts.clientOptions,
    ...(opts.token ? { auth: { type: "bearer" as const, token: opts.token } } : auth ? { auth } : {}),
    ...route.client,
    baseUrl: route.baseUrl,
  });
  return { client, sessionId: endpoint.sessionId, namespace, name };
}

export async function wake(k: Kube, ref: string): Promise<{ namespace: string; name: string }> {
  const t = target(k, ref);
  await wakeLivySession(k.kube, t.namespace, t.name);
  return t;
}

function formatMs(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

export function durationFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseDuration(value);
  } catch {
    throw new UsageError(`${flag}: not a duration: ${value} (examples: 500ms, 30s, 5m, 1h)`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
