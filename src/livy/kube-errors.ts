/**
 * The errors of `livy-operator/kube`, in a module of their own that loads no Kubernetes client, so that
 * code telling failures apart (livyctl's exit codes) does not pay for loading one.
 */
import { type LivySessionStatus, readyCondition } from "../api/index.ts";
import { LivyError } from "./errors.ts";

/** The LivySession cannot become Ready without someone changing it: failed, suspended, being deleted. */
export class LivySessionNotReadyError extends LivyError {
  readonly namespace: string;
  readonly resourceName: string;
  readonly phase: string | undefined;
  readonly reason: string | undefined;

  constructor(namespace: string, name: string, status: LivySessionStatus | undefined, why: string) {
    const ready = readyCondition({ status });
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

/** The kubeconfig is missing, unreadable, malformed, or has no such context. */
export class KubeconfigError extends Error {
  readonly code = "KUBECONFIG";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KubeconfigError";
  }
}

/** The API server could not be reached (refused, no such host, TLS, timeout). */
export class KubernetesUnreachableError extends Error {
  readonly code = "KUBERNETES_UNREACHABLE";
  readonly server: string;
  readonly context: string | undefined;
  /** The low-level code: ECONNREFUSED, ENOTFOUND, UND_ERR_CONNECT_TIMEOUT, a TLS code, ... */
  readonly reason: string;
  constructor(
    init: { server: string; context: string | undefined; reason: string; what: string },
    cause: unknown,
  ) {
    super(
      `cannot reach the Kubernetes API server at ${init.server}${init.context ? ` (context ${init.context})` : ""} ` +
        `to ${init.what}: ${describeNetworkCode(init.reason, cause)}`,
      { cause },
    );
    this.name = "KubernetesUnreachableError";
    this.server = init.server;
    this.context = init.context;
    this.reason = init.reason;
  }
}

/**
 * The API server answered with an error (src/kube/client.ts's KubeApiError), recognised without loading
 * that module: its `name`, an HTTP `status` and Kubernetes' `reason`.
 */
export function isKubeApiError(err: unknown): err is Error & { status: number; reason: string } {
  return (
    err instanceof Error &&
    err.name === "KubeApiError" &&
    typeof (err as { status?: unknown }).status === "number"
  );
}

function describeNetworkCode(code: string, cause: unknown): string {
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused (is the cluster running, and is this the right context?)";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "its host name does not resolve";
    case "ETIMEDOUT":
    case "UND_ERR_CONNECT_TIMEOUT":
    case "UND_ERR_HEADERS_TIMEOUT":
      return "no answer in time";
    default:
      return `${code}${cause instanceof Error && cause.message ? ` (${cause.message.split("\n")[0]})` : ""}`;
  }
}
