/**
 * Making the Kubernetes client of `livy-operator/kube` the way kubectl does (a kubeconfig file, its
 * context, the namespace of that context, or the pod's service account in a cluster), and telling
 * Kubernetes failures apart from Livy's: a kubeconfig that is missing or malformed, an API server that
 * cannot be reached, an API server that refused.
 */
import { existsSync, readFileSync } from "node:fs";
import { KubeApiError, KubeClient, loadKubeConfig } from "../kube/client.ts";
import { KubeconfigError, KubernetesUnreachableError } from "./kube-errors.ts";

export { KubeconfigError, KubernetesUnreachableError } from "./kube-errors.ts";

export interface KubeConnectOptions {
  /** A kubeconfig file; default `$KUBECONFIG`, then `~/.kube/config`, then the pod's service account. */
  kubeconfig?: string | undefined;
  /** A context of the kubeconfig other than its current one. */
  context?: string | undefined;
  /** Overrides the context's namespace. */
  namespace?: string | undefined;
}

export interface KubeConnection {
  kube: KubeClient;
  /** The namespace to use: the option, else the context's, else the service account's, else `default`. */
  namespace: string;
  context: string | undefined;
  server: string;
  close(): Promise<void>;
}

/**
 * A Kubernetes client and namespace, as kubectl would pick them:
 *
 * ```ts
 * import { connectKube, connectLivySession } from "livy-operator/kube";
 * const { kube, namespace, close } = await connectKube({ context: "prod" });
 * const { session, client } = await connectLivySession(kube, namespace, "worksheet-42");
 * ```
 * Throws KubeconfigError when the configuration cannot be used.
 */
export async function connectKube(opts: KubeConnectOptions = {}): Promise<KubeConnection> {
  const path = opts.kubeconfig;
  if (path !== undefined) {
    if (!existsSync(path)) throw new KubeconfigError(`kubeconfig ${path}: no such file`);
    try {
      readFileSync(path);
    } catch (err) {
      throw new KubeconfigError(`kubeconfig ${path}: cannot be read (${errorText(err)})`, { cause: err });
    }
  }
  let kc: ReturnType<typeof loadKubeConfig>;
  try {
    kc = loadKubeConfig(path, opts.context === undefined ? {} : { context: opts.context });
  } catch (err) {
    throw new KubeconfigError(kubeconfigMessage(err, path), { cause: err });
  }
  const context = kc.getCurrentContext() || undefined;
  const namespace =
    opts.namespace ?? (context ? kc.getContextObject(context)?.namespace : undefined)?.trim() ?? "default";
  let kube: KubeClient;
  try {
    kube = await KubeClient.create(kc);
  } catch (err) {
    throw new KubeconfigError(kubeconfigMessage(err, path), { cause: err });
  }
  return {
    kube,
    namespace: namespace || "default",
    context,
    server: kube.server,
    close: () => kube.close(),
  };
}

function kubeconfigMessage(err: unknown, path: string | undefined): string {
  const where =
    path ?? (process.env.KUBECONFIG ? `$KUBECONFIG (${process.env.KUBECONFIG})` : "~/.kube/config");
  const text = errorText(err);
  if (/no usable kubeconfig/.test(text)) return text;
  if ((err as { code?: string }).code === "ENOENT") return `kubeconfig ${where}: no such file`;
  if (/context ".*" is not in the kubeconfig/.test(text)) return `kubeconfig ${where}: ${text}`;
  // the YAML parser's messages run over several lines with a code excerpt: its first line says enough
  return `kubeconfig ${where} is not a valid kubeconfig: ${text.split("\n")[0]}`;
}

/** Network codes of a failed request, where undici and Node put them. */
export function networkCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    if (typeof e === "object" && "code" in e && typeof e.code === "string" && e.code !== "UND_ERR_SOCKET")
      return e.code;
    if (e instanceof DOMException && e.name === "TimeoutError") return "ETIMEDOUT";
    e = e instanceof Error ? e.cause : undefined;
  }
  return err instanceof Error && /other side closed|socket/i.test(err.message) ? "UND_ERR_SOCKET" : undefined;
}

const UNREACHABLE_CODES =
  /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EPIPE|UND_ERR_.*|ERR_TLS_.*|CERT_.*|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_.*|ERR_SSL_.*)$/;

/**
 * A failure of a call to the API server as a typed error: KubeApiError (it answered with an error) passes
 * through, network failures become KubernetesUnreachableError naming the server and context, anything
 * else is returned as it is.
 */
export function kubernetesError(err: unknown, kube: KubeClient, what: string): unknown {
  if (err instanceof KubeApiError || err instanceof KubernetesUnreachableError) return err;
  const code = networkCode(err);
  if (code === undefined || !UNREACHABLE_CODES.test(code)) return err;
  return new KubernetesUnreachableError(
    { server: kube.server, context: kube.kubeConfig.getCurrentContext() || undefined, reason: code, what },
    err,
  );
}

/** Runs a call to the API server, turning its failure into a typed one (see kubernetesError). */
export async function kubeCall<T>(kube: KubeClient, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw kubernetesError(err, kube, what);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
