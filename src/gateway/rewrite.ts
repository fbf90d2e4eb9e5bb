/**
 * Livy's answers as a client of the gateway sees them (pure): the LivySession's session is id 0 whatever
 * Livy's id is this time, Location headers point into the gateway, the server's internal URLs are not
 * shown, and the gateway's request markers are taken out of statement code.
 *
 * Request markers make statement POSTs idempotent without state in the gateway: each statement the
 * gateway forwards starts with a one-line comment naming the request (`# livy-gateway request <id>`), in
 * the comment syntax of the statement's language, so the statement itself is the record of the request.
 * After a lost answer (a reset connection, a timeout, or a client retrying with the same Idempotency-Key
 * through another replica) the gateway finds the statement by its marker among the newest ones instead of
 * running the code twice. A leading comment changes nothing Livy computes: Python parses it away (and
 * Livy's magic lines, which start with %, still come after it), Scala's REPL joins a comment line to the
 * next, Spark SQL and R skip comments.
 */
import type { LivySession } from "../api/index.ts";
import { SESSION_ID } from "./routes.ts";
import type { Transform } from "./view.ts";

const COMMENT: Record<string, string> = { pyspark: "#", sparkr: "#", spark: "//", sql: "--" };
const MARKER = /^(#|\/\/|--) livy-gateway request ([A-Za-z0-9_-]{8,64})\n/;
export const MARKER_ID = /^[A-Za-z0-9_-]{8,64}$/;

/** The code with the request marker in front, or null when the language is unknown (then no marker). */
export function markCode(code: string, kind: string, id: string): string | null {
  const c = COMMENT[kind];
  if (!c || !MARKER_ID.test(id)) return null;
  return `${c} livy-gateway request ${id}\n${code}`;
}

/** The code without its marker, and the marker's request id when there was one. */
export function unmarkCode(code: string): { code: string; id?: string } {
  const m = MARKER.exec(code);
  if (!m) return { code };
  return { code: code.slice(m[0].length), id: m[2] };
}

/** The statement kind a POST body runs as: its own `kind`, else the session's. */
export function statementKind(body: Record<string, unknown>, sessionKind: string): string {
  return typeof body.kind === "string" && body.kind !== "shared" ? body.kind : sessionKind;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

function clientStatement(s: unknown): unknown {
  if (!isObject(s) || typeof s.code !== "string") return s;
  const { code } = unmarkCode(s.code);
  return code === s.code ? s : { ...s, code };
}

/** Livy's session object as the gateway shows it: id 0, the LivySession's name, no internal URLs. */
export function clientSession(s: unknown, obj: LivySession): unknown {
  if (!isObject(s)) return s;
  const out: Json = { ...s, id: SESSION_ID, name: obj.metadata.name };
  if (isObject(s.appInfo)) {
    // driver log and Spark UI links point into the cluster: not reachable, and not to be shown
    out.appInfo = Object.fromEntries(Object.keys(s.appInfo).map((k) => [k, null]));
  }
  return out;
}

export interface Rewritten {
  status: number;
  body: unknown;
  location?: string;
}

/**
 * A forwarded JSON answer rewritten for the client. Error answers (status >= 400) pass unchanged: they are
 * Livy's words about the request.
 */
export function rewriteAnswer(
  transform: Transform,
  status: number,
  body: unknown,
  ctx: { obj: LivySession; prefix: string },
): Rewritten {
  if (status >= 400 || transform === "none") return { status, body };
  const sessionPath = `${ctx.prefix}/sessions/${SESSION_ID}`;
  switch (transform) {
    case "session":
      return { status, body: clientSession(body, ctx.obj) };
    case "sessionAsList":
      return { status, body: { from: 0, total: 1, sessions: [clientSession(body, ctx.obj)] } };
    case "sessionCreated":
      return { status: 201, body: clientSession(body, ctx.obj), location: sessionPath };
    case "state":
    case "log":
      return { status, body: isObject(body) ? { ...body, id: SESSION_ID } : body };
    case "statement":
      return { status, body: clientStatement(body) };
    case "statementCreated": {
      const id = isObject(body) ? body.id : undefined;
      return {
        status,
        body: clientStatement(body),
        ...(typeof id === "number" ? { location: `${sessionPath}/statements/${id}` } : {}),
      };
    }
    case "statementList":
      if (!isObject(body) || !Array.isArray(body.statements)) return { status, body };
      return { status, body: { ...body, statements: body.statements.map(clientStatement) } };
  }
}

/** The newest statement carrying the request marker `id`, among Livy's statement list, or undefined. */
export function findMarked(list: unknown, id: string): Json | undefined {
  if (!isObject(list) || !Array.isArray(list.statements)) return undefined;
  for (const s of list.statements) {
    if (isObject(s) && typeof s.code === "string" && unmarkCode(s.code).id === id) return s;
  }
  return undefined;
}
