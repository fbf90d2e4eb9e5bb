/**
 * What the gateway decides, as pure functions of the LivySession it has cached and the request: whether a
 * request is forwarded to the Livy server, held until the session is Ready (waking it first), or answered
 * by the gateway itself. The I/O shell (server.ts) only carries these decisions out.
 *
 * The model: a LivySession is one long-lived Livy interactive session, id 0 under its prefix. Its server
 * comes and goes (idle teardown, wake, Recover's restarts), the session id a client holds does not. Parked
 * for idleness it reads as `idle` (the next statement runs, after a cold start); waking it reads as
 * `starting`; Failed reads as `dead`; suspended as `not_started`.
 */
import {
  ANNOTATION_DEMANDED_AT,
  demandToken,
  failureOf,
  isIdle,
  isReady,
  type LivySession,
  readyCondition,
} from "../api/index.ts";
import type { GatewayRoute } from "./routes.ts";
import { SESSION_ID } from "./routes.ts";

export type SessionView =
  | { kind: "ready"; serverURL: string; livySessionId: number; livyState: string }
  | { kind: "starting"; message: string }
  | { kind: "parked"; message: string }
  | { kind: "failed"; reason: string; message: string }
  | { kind: "suspended"; message: string }
  | { kind: "deleting" };

/** A new value of the demand annotation that the operator has not served yet: it is about to start. */
export function demandPending(obj: LivySession): boolean {
  const annotation = obj.metadata.annotations?.[ANNOTATION_DEMANDED_AT];
  return annotation !== undefined && demandToken(annotation) !== obj.status?.demandedAt;
}

export function viewOf(obj: LivySession): SessionView {
  if (obj.metadata.deletionTimestamp) return { kind: "deleting" };
  if (obj.spec.suspend)
    return { kind: "suspended", message: "spec.suspend is true: nothing runs until it is false" };
  const st = obj.status;
  if (isReady(obj) && st?.serverURL && st.livySessionId !== undefined && st.livySessionId !== null)
    return {
      kind: "ready",
      serverURL: st.serverURL,
      livySessionId: st.livySessionId,
      livyState: st.livySessionState ?? "idle",
    };
  const message = readyCondition(obj)?.message || st?.message || "";
  if (isIdle(obj) && !demandPending(obj)) return { kind: "parked", message };
  const failure = failureOf(obj);
  if (failure && !demandPending(obj))
    return { kind: "failed", reason: failure.reason, message: failure.message };
  return { kind: "starting", message: message || "the Livy server is being deployed" };
}

/** Livy's session state for the view, as a plain Livy client should read it. */
export function livyStateOf(view: SessionView): string {
  switch (view.kind) {
    case "ready":
      return view.livyState;
    case "starting":
      return "starting";
    case "parked":
      return "idle";
    case "failed":
      return "dead";
    case "suspended":
      return "not_started";
    case "deleting":
      return "shutting_down";
  }
}

/** A body the gateway answers with: a JSON value. */
export interface Answer {
  type: "answer";
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** Set the demand annotation first (the session is parked or failed and a client asked for it). */
  wake?: boolean;
}

/** How a forwarded answer is turned into what the client sees (see rewrite.ts). */
export type Transform =
  | "session"
  | "sessionAsList"
  | "sessionCreated"
  | "state"
  | "log"
  | "statement"
  | "statementCreated"
  | "statementList"
  | "none";

export interface Forward {
  type: "forward";
  method: string;
  /** Path and query on the Livy server. */
  path: string;
  transform: Transform;
}

export interface Hold {
  type: "hold";
  /** Set the demand annotation first: the session is parked for idleness. */
  wake: boolean;
}

export type Action = Answer | Forward | Hold;

const msg = (status: number, text: string, headers?: Record<string, string>): Answer => ({
  type: "answer",
  status,
  body: { msg: text },
  ...(headers ? { headers } : {}),
});

function describe(obj: LivySession): string {
  return `LivySession ${obj.metadata.namespace}/${obj.metadata.name}`;
}

/** Why the session cannot run anything now, for 409 answers. */
function unusable(obj: LivySession, view: SessionView): Answer | null {
  if (view.kind === "failed")
    return msg(
      409,
      `${describe(obj)} has failed (${view.reason}: ${view.message}); it starts again on a new demand: POST /sessions, livyctl wake, or the ${ANNOTATION_DEMANDED_AT} annotation`,
    );
  if (view.kind === "suspended") return msg(409, `${describe(obj)} is suspended: ${view.message}`);
  return null;
}

/**
 * The action for a request, given the LivySession (null: not found) and the request's route. Pure.
 * `createBodyError` is the verdict of {@link checkCreateBody} on a POST /sessions body.
 */
export function decide(
  route: GatewayRoute,
  obj: LivySession | null,
  method: string,
  opts: { livyVersion: string; createBodyError?: string | null },
): Action {
  const op = route.livy;
  if (op.op === "methodNotAllowed")
    return { ...msg(405, `${method} is not allowed here`), headers: { allow: op.allow } };
  if (op.op === "notFound") return msg(404, `Not Found: ${route.livyPath}`);
  if (op.op === "batches")
    return msg(
      404,
      "batches are not served here: a LivySession is one interactive session (use /sessions/0/statements)",
    );
  if (!obj) return msg(404, `LivySession '${route.namespace}/${route.name}' not found.`);
  const view = viewOf(obj);
  if (view.kind === "deleting") return msg(404, `${describe(obj)} is being deleted.`);
  if (op.op === "unknownSession") return msg(404, `Session '${op.id}' not found.`);

  const ready = view.kind === "ready" ? view : null;
  const base = ready ? `/sessions/${ready.livySessionId}` : "";
  const fwd = (m: string, path: string, transform: Transform): Forward => ({
    type: "forward",
    method: m,
    path,
    transform,
  });
  const synth = (status: number, body: unknown): Answer => ({ type: "answer", status, body });

  switch (op.op) {
    case "version":
      return ready
        ? fwd("GET", `/version${route.search}`, "none")
        : synth(200, versionBody(opts.livyVersion));
    case "listSessions": {
      const from = Number(new URLSearchParams(route.search).get("from") ?? 0);
      if (from > 0) return synth(200, { from, total: 1, sessions: [] });
      return ready
        ? fwd("GET", base, "sessionAsList")
        : synth(200, { from: 0, total: 1, sessions: [sessionBody(obj, view)] });
    }
    case "createSession": {
      if (opts.createBodyError) return msg(400, opts.createBodyError);
      const refusal = view.kind === "suspended" ? unusable(obj, view) : null;
      if (refusal) return refusal;
      if (ready) return fwd("GET", base, "sessionCreated");
      const wake = view.kind === "parked" || view.kind === "failed";
      const starting: SessionView = wake ? { kind: "starting", message: "woken by POST /sessions" } : view;
      return {
        type: "answer",
        status: 201,
        body: sessionBody(obj, starting),
        headers: { location: `${route.prefix}/sessions/${SESSION_ID}` },
        wake,
      };
    }
    case "getSession":
      return ready ? fwd("GET", base, "session") : synth(200, sessionBody(obj, view));
    case "sessionState":
      return ready
        ? fwd("GET", `${base}/state`, "state")
        : synth(200, { id: SESSION_ID, state: livyStateOf(view) });
    case "sessionLog": {
      if (ready) return fwd("GET", `${base}/log${route.search}`, "log");
      const lines = logLines(obj, view);
      return synth(200, { id: SESSION_ID, from: 0, total: lines.length, log: lines });
    }
    case "deleteSession":
      // A plain client deletes the session it created when it is done (sparkmagic's cleanup, pylivy's
      // context manager). The LivySession is declared with kubectl and may be shared: the client detaches,
      // and idleTimeout ends the server once nobody uses it.
      return synth(200, { msg: "deleted" });
    case "listStatements":
      return ready
        ? fwd("GET", `${base}/statements${route.search}`, "statementList")
        : synth(200, { total_statements: 0, statements: [] });
    case "getStatement":
      return ready
        ? fwd("GET", `${base}/statements/${encodeURIComponent(op.statementId)}`, "statement")
        : msg(404, `Statement not found: ${describe(obj)} is not running (${livyStateOf(view)})`);
    case "cancelStatement":
      // Livy answers "canceled" to any cancel, even of statements it does not know
      return ready
        ? fwd("POST", `${base}/statements/${encodeURIComponent(op.statementId)}/cancel`, "none")
        : synth(200, { msg: "canceled" });
    case "completion":
      // completion is interactive (tab): never worth a cold start
      return ready ? fwd("POST", `${base}/completion`, "none") : synth(200, { candidates: [] });
    case "sparkUi":
      // served by sparkUiTarget (a stream, not a Livy answer): never decided here
      return msg(404, "Not Found");
    case "postStatement":
    case "sessionOther": {
      const isRead = op.op === "sessionOther" && (method === "GET" || method === "HEAD");
      if (ready) {
        return op.op === "postStatement"
          ? fwd("POST", `${base}/statements`, "statementCreated")
          : fwd(method, `${base}${op.rest}${route.search}`, "none");
      }
      if (isRead) return msg(404, `${describe(obj)} is not running (${livyStateOf(view)})`);
      const refusal = unusable(obj, view);
      if (refusal) return refusal;
      return { type: "hold", wake: view.kind === "parked" };
    }
  }
}

/**
 * Where a Spark UI request goes: the session's Spark UI (status.sparkUiURL) while it is Ready, else the
 * answer. Never a wake: looking at the UI of a parked session starts no Spark.
 */
export function sparkUiTarget(obj: LivySession | null, route: GatewayRoute): { url: string } | Answer {
  if (!obj) return msg(404, `LivySession '${route.namespace}/${route.name}' not found.`);
  const view = viewOf(obj);
  if (view.kind !== "ready")
    return msg(
      503,
      `${describe(obj)} has no running Spark application (${livyStateOf(view)}): its Spark UI exists while it is Ready`,
      { "retry-after": "5" },
    );
  const ui = obj.status?.sparkUiURL;
  if (!ui)
    return msg(
      404,
      `${describe(obj)} has no Spark UI (status.sparkUiURL is empty: the operator's server URL template has no {port})`,
    );
  const path = route.livy.op === "sparkUi" ? route.livy.path : "/";
  // Spark's kill links (/jobs/job/kill/, /stages/stage/kill/) act on a GET: a reader may not use them
  if (/\/kill\/?$/.test(path))
    return msg(
      403,
      `the Spark UI is read-only through the gateway: cancel a statement with POST ${route.prefix}/sessions/0/statements/{id}/cancel`,
    );
  return { url: `${ui.replace(/\/+$/, "")}${path}${route.search}` };
}

/**
 * A Location header from the Spark UI, as the client must follow it: the UI's absolute URLs (Jetty makes
 * redirects absolute, with the upstream's host) lose their origin, and a path the UI made without the
 * forwarded context (Jetty's own `/jobs` to `/jobs/`) gets it.
 */
export function sparkUiLocation(location: string, upstream: string, context: string): string {
  let path = location;
  try {
    const up = new URL(upstream);
    const loc = new URL(location, up);
    if (loc.origin !== up.origin) return location;
    path = `${loc.pathname}${loc.search}${loc.hash}`;
  } catch {
    return location;
  }
  return path === context || path.startsWith(`${context}/`) || path.startsWith(`${context}?`)
    ? path
    : `${context}${path.startsWith("/") ? "" : "/"}${path}`;
}

/** What a held request does once the LivySession changed: go on, keep waiting, or answer. */
export function afterChange(obj: LivySession | null, route: GatewayRoute): "ready" | "wait" | Answer {
  if (!obj) return msg(404, `LivySession '${route.namespace}/${route.name}' was deleted.`);
  const view = viewOf(obj);
  if (view.kind === "ready") return "ready";
  if (view.kind === "deleting") return msg(404, `${describe(obj)} is being deleted.`);
  return unusable(obj, view) ?? "wait";
}

export function versionBody(version: string) {
  return { url: "", branch: "", revision: "", version, date: "", user: "" };
}

function logLines(obj: LivySession, view: SessionView): string[] {
  const who = describe(obj);
  switch (view.kind) {
    case "parked":
      return [
        `${who}: the Livy server was removed after ${obj.spec.idleTimeout} without activity.`,
        "The next statement starts it again (variables of earlier statements are not kept).",
      ];
    case "starting":
      return [`${who} is starting: ${view.message}`];
    case "failed":
      return [`${who} has failed: ${view.reason}`, ...view.message.split("\n")];
    case "suspended":
      return [`${who} is suspended: ${view.message}`];
    default:
      return [];
  }
}

/** A Livy session object for a LivySession whose server is not running, in Livy 0.9's shape. */
export function sessionBody(obj: LivySession, view: SessionView): Record<string, unknown> {
  const s = obj.spec.session ?? {};
  return {
    id: SESSION_ID,
    name: obj.metadata.name,
    appId: null,
    owner: null,
    proxyUser: s.proxyUser ?? null,
    state: livyStateOf(view),
    kind: obj.spec.kind,
    appInfo: { driverLogUrl: null, sparkUiUrl: null, executorLogUrls: null },
    log: logLines(obj, view),
    ttl: null,
    idleTimeout: null,
    driverMemory: s.driverMemory ?? null,
    driverCores: s.driverCores ?? 0,
    executorMemory: s.executorMemory ?? null,
    executorCores: s.executorCores ?? 0,
    conf: s.conf ?? {},
    archives: s.archives ?? [],
    files: s.files ?? [],
    heartbeatTimeoutInSecond: s.heartbeatTimeoutInSecond ?? 0,
    jars: s.jars ?? [],
    numExecutors: s.numExecutors ?? 0,
    pyFiles: s.pyFiles ?? [],
    queue: s.queue ?? null,
  };
}

/** Fields of Livy's POST /sessions body that a LivySession's spec decides (spec.session). */
const SPEC_FIELDS = [
  "proxyUser",
  "jars",
  "pyFiles",
  "files",
  "driverMemory",
  "driverCores",
  "executorMemory",
  "executorCores",
  "numExecutors",
  "archives",
  "queue",
  "conf",
] as const;
/** Fields the gateway and operator manage (the Livy name, Livy's own timeouts): accepted and ignored. */
const MANAGED_FIELDS = new Set(["name", "heartbeatTimeoutInSecond", "ttl", "idleTimeout"]);

const isEmpty = (v: unknown) =>
  v === null ||
  v === undefined ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === "object" && v !== null && Object.keys(v).length === 0);

/**
 * A POST /sessions body checked against the LivySession: null when it may attach to the session, else
 * the reason in words. The spec is authoritative (it is what `kubectl apply` declared): a body may repeat
 * what the spec says, or leave it out, but not ask for something else.
 */
export function checkCreateBody(raw: string, obj: LivySession): string | null {
  let body: unknown;
  try {
    body = raw.trim() === "" ? {} : JSON.parse(raw);
  } catch {
    return "the body is not JSON";
  }
  if (typeof body !== "object" || body === null || Array.isArray(body))
    return "the body must be a JSON object";
  const b = body as Record<string, unknown>;
  const who = describe(obj);
  const problems: string[] = [];
  const known = new Set<string>(["kind", ...SPEC_FIELDS, ...MANAGED_FIELDS]);
  const unknown = Object.keys(b).filter((k) => !known.has(k));
  if (unknown.length) problems.push(`unknown field(s) ${unknown.join(", ")}`);
  if (b.kind !== undefined && b.kind !== null && b.kind !== obj.spec.kind && b.kind !== "shared")
    problems.push(
      `kind ${JSON.stringify(b.kind)} (the session is ${obj.spec.kind}; create a LivySession of that kind)`,
    );
  const spec = (obj.spec.session ?? {}) as Record<string, unknown>;
  for (const f of SPEC_FIELDS) {
    const want = b[f];
    if (isEmpty(want)) continue;
    const have = spec[f];
    if (!sameOrIncluded(want, have))
      problems.push(
        `${f}=${JSON.stringify(want)} (the LivySession has ${have === undefined ? "none" : JSON.stringify(have)})`,
      );
  }
  if (!problems.length) return null;
  return `${who} fixes its session in its spec; this request asks for ${problems.join("; ")}: change the LivySession (kubectl edit livysession ${obj.metadata.name} -n ${obj.metadata.namespace}) or leave the field(s) out`;
}

/** Scalars equal; lists: every entry in the spec's list; maps (conf): every entry equal in the spec's map. */
function sameOrIncluded(want: unknown, have: unknown): boolean {
  if (Array.isArray(want)) return Array.isArray(have) && want.every((w) => have.includes(w));
  if (typeof want === "object" && want !== null) {
    if (typeof have !== "object" || have === null) return false;
    const h = have as Record<string, unknown>;
    return Object.entries(want).every(([k, v]) => String(h[k]) === String(v) && k in h);
  }
  return String(want) === String(have);
}
