/**
 * The gateway's URL space, parsed without I/O. Per LivySession, Livy's REST API lives unchanged under
 * `/namespaces/{namespace}/livysessions/{name}`, with exactly one interactive session in it: the
 * LivySession's own, whose id is always {@link SESSION_ID}.
 */

/** The id of the one session a LivySession's prefix holds: stable across idle teardowns and wakes. */
export const SESSION_ID = 0;

export type LivyOp =
  | { op: "version" }
  | { op: "listSessions" }
  | { op: "createSession" }
  | { op: "getSession" }
  | { op: "sessionState" }
  | { op: "sessionLog" }
  | { op: "deleteSession" }
  | { op: "listStatements" }
  | { op: "postStatement" }
  | { op: "getStatement"; statementId: string }
  | { op: "cancelStatement"; statementId: string }
  | { op: "completion" }
  /** Other routes of the session (Livy's programmatic-client API: jobs, jars, ...): forwarded as they are. */
  | { op: "sessionOther"; rest: string }
  | { op: "unknownSession"; id: string }
  /**
   * The session's Spark UI (the driver's web UI, status.sparkUiURL) under `{prefix}/sparkui/`: `path` is
   * the UI's own path, its trailing slash kept (the UI redirects `/jobs` to `/jobs/`).
   */
  | { op: "sparkUi"; path: string }
  | { op: "batches" }
  | { op: "notFound" }
  | { op: "methodNotAllowed"; allow: string };

export interface GatewayRoute {
  namespace: string;
  name: string;
  /** The path up to and including the LivySession's name, as the client sent it (for Location headers). */
  prefix: string;
  /** The Livy path after the prefix, without the query: "/sessions/0/statements". */
  livyPath: string;
  /** The query string with its "?", or "". */
  search: string;
  livy: LivyOp;
}

/** Where a LivySession's Spark UI is, under its prefix. */
export const SPARK_UI = "/sparkui";
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const PREFIX = /^\/namespaces\/([^/]+)\/livysessions\/([^/]+)(\/.*)?$/;
/**
 * Through the API server's aggregation layer (aggregation.ts): the `proxy` subresource is what the API
 * server authorized, so a path without it is not served there.
 */
const AGGREGATED = /^\/apis\/livy\.dev\/gateway\/namespaces\/([^/]+)\/livysessions\/([^/]+)\/proxy(\/.*)?$/;

/** Kubernetes' verb for an HTTP method, as the API server maps it for `services/proxy`. */
export function verbOf(method: string): string {
  switch (method) {
    case "GET":
    case "HEAD":
      return "get";
    case "POST":
      return "create";
    case "PUT":
      return "update";
    case "PATCH":
      return "patch";
    case "DELETE":
      return "delete";
    default:
      return method.toLowerCase();
  }
}

/**
 * The LivySession and the Livy operation a request addresses, or null when the path is not under a
 * LivySession's prefix (or names one that cannot exist).
 */
export function parseRoute(
  method: string,
  rawUrl: string,
  opts: { aggregated?: boolean } = {},
): GatewayRoute | null {
  const q = rawUrl.indexOf("?");
  const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
  const search = q >= 0 ? rawUrl.slice(q) : "";
  const m = (opts.aggregated ? AGGREGATED : PREFIX).exec(path);
  if (!m) return null;
  let namespace: string;
  let name: string;
  try {
    namespace = decodeURIComponent(m[1] ?? "");
    name = decodeURIComponent(m[2] ?? "");
  } catch {
    return null;
  }
  if (!DNS_LABEL.test(namespace) || namespace.length > 63 || !DNS_LABEL.test(name) || name.length > 63)
    return null;
  const rest = m[3] ?? "";
  const prefix = path.slice(0, path.length - rest.length);
  const livyPath = rest.replace(/\/+$/, "") || "/";
  if (rest === SPARK_UI || rest.startsWith(`${SPARK_UI}/`)) {
    // read-only: the UI's own actions (killing a job or stage) stay with Livy's API
    const livy: LivyOp =
      method === "GET" || method === "HEAD"
        ? { op: "sparkUi", path: rest.slice(SPARK_UI.length) || "/" }
        : { op: "methodNotAllowed", allow: "GET, HEAD" };
    return { namespace, name, prefix, livyPath, search, livy };
  }
  return { namespace, name, prefix, livyPath, search, livy: livyOp(method, livyPath, name) };
}

function livyOp(method: string, livyPath: string, name: string): LivyOp {
  const seg = livyPath.split("/").filter(Boolean);
  const is = (...allowed: string[]): LivyOp | null =>
    allowed.includes(method) || (method === "HEAD" && allowed.includes("GET"))
      ? null
      : { op: "methodNotAllowed", allow: allowed.join(", ") };
  const [root, id, sub, sid, action] = seg;
  if (root === "version" && seg.length === 1) return is("GET") ?? { op: "version" };
  if (root === "batches") return { op: "batches" };
  if (root !== "sessions") return { op: "notFound" };
  if (id === undefined) {
    if (method === "GET" || method === "HEAD") return { op: "listSessions" };
    if (method === "POST") return { op: "createSession" };
    return { op: "methodNotAllowed", allow: "GET, POST" };
  }
  // the session is addressed by its id, or (as Livy 0.8+ allows) by its name: the LivySession's
  if (id !== String(SESSION_ID) && id !== name) return { op: "unknownSession", id };
  if (sub === undefined) {
    if (method === "DELETE") return { op: "deleteSession" };
    return is("GET", "DELETE") ?? { op: "getSession" };
  }
  if (sub === "state" && seg.length === 3) return is("GET") ?? { op: "sessionState" };
  if (sub === "log" && seg.length === 3) return is("GET") ?? { op: "sessionLog" };
  if (sub === "completion" && seg.length === 3) return is("POST") ?? { op: "completion" };
  if (sub === "statements") {
    if (sid === undefined) {
      if (method === "POST") return { op: "postStatement" };
      return is("GET", "POST") ?? { op: "listStatements" };
    }
    if (seg.length === 4) return is("GET") ?? { op: "getStatement", statementId: sid };
    if (action === "cancel" && seg.length === 5)
      return is("POST") ?? { op: "cancelStatement", statementId: sid };
    return { op: "notFound" };
  }
  return { op: "sessionOther", rest: `/${seg.slice(2).join("/")}` };
}
