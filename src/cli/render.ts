/**
 * What livyctl prints and which exit code it ends with: pure functions, so the CLI's contract is tested
 * without a terminal.
 */
import {
  LivyAbortError,
  LivyError,
  LivyHttpError,
  LivyProtocolError,
  LivyTimeoutError,
  LivyUnreachableError,
  type Session,
  SessionGoneError,
  SessionNotUsableError,
  type Statement,
  StatementCancelledError,
  StatementError,
  type StatementResult,
} from "../livy/index.ts";

export type OutputFormat = "text" | "json";

/** Exit codes are API: scripts branch on them. */
export const EXIT = {
  ok: 0,
  /** The statement ran and failed, or was cancelled. */
  statementFailed: 1,
  usage: 2,
  /** The session is gone, dead, still starting or otherwise not usable. */
  sessionNotUsable: 3,
  /** Livy did not answer, or not in time (--request-timeout), or the statement outlived --timeout. */
  unreachable: 4,
  /** Livy answered with an error or with something that is not Livy's protocol. */
  livyError: 5,
  /** Interrupted (Ctrl-C): the statement was cancelled in Livy. */
  interrupted: 130,
} as const;

export function exitCodeOf(err: unknown): number {
  if (err instanceof StatementError || err instanceof StatementCancelledError) return EXIT.statementFailed;
  if (err instanceof SessionGoneError || err instanceof SessionNotUsableError) return EXIT.sessionNotUsable;
  if (err instanceof LivyUnreachableError || err instanceof LivyTimeoutError) return EXIT.unreachable;
  if (err instanceof LivyAbortError) return EXIT.interrupted;
  if (err instanceof LivyHttpError || err instanceof LivyProtocolError) return EXIT.livyError;
  return EXIT.livyError;
}

/** The error for stderr (text) or as a JSON object (json). */
export function renderError(err: unknown, format: OutputFormat): string {
  if (format === "json") return `${JSON.stringify({ error: errorJson(err) }, null, 2)}\n`;
  if (err instanceof StatementError) {
    // Livy's traceback lines carry their own newlines.
    const tb = err.traceback.join("");
    return tb.includes(`${err.ename}`) ? ensureNewline(tb) : `${tb}${err.ename}: ${err.evalue}\n`;
  }
  return `error: ${err instanceof Error ? err.message : String(err)}\n`;
}

function errorJson(err: unknown): Record<string, unknown> {
  if (!(err instanceof LivyError)) return { message: err instanceof Error ? err.message : String(err) };
  const base: Record<string, unknown> = { code: err.code, message: err.message };
  if (err.sessionId !== undefined) base.sessionId = err.sessionId;
  if (err instanceof StatementError) {
    return {
      ...base,
      statementId: err.statementId,
      ename: err.ename,
      evalue: err.evalue,
      traceback: err.traceback,
    };
  }
  if (err instanceof LivyHttpError) return { ...base, status: err.status, msg: err.msg };
  if (err instanceof SessionNotUsableError) return { ...base, state: err.state };
  return base;
}

/** A statement's result: its text, JSON pretty-printed, a table aligned in columns. */
export function renderResult(result: StatementResult, format: OutputFormat): string {
  if (format === "json") return `${JSON.stringify(result, null, 2)}\n`;
  switch (result.kind) {
    case "text":
      return result.text ? ensureNewline(result.text) : "";
    case "json":
      return `${JSON.stringify(result.json, null, 2)}\n`;
    case "table":
      return renderTable(
        result.columns.map((c) => c.name),
        result.rows.map((r) => r.map(cell)),
      );
    case "image":
      return `[${result.mimeType}, ${Math.floor((result.base64.length * 3) / 4)} bytes: use --save FILE or --output json]\n`;
  }
}

export function renderSessions(sessions: Session[], format: OutputFormat): string {
  if (format === "json") return `${JSON.stringify(sessions, null, 2)}\n`;
  return renderTable(
    ["ID", "NAME", "KIND", "STATE", "APP ID"],
    sessions.map((s) => [String(s.id), s.name ?? "", s.kind ?? "", s.state, s.appId ?? ""]),
  );
}

export function renderStatements(statements: Statement[], format: OutputFormat): string {
  if (format === "json") return `${JSON.stringify(statements, null, 2)}\n`;
  return renderTable(
    ["ID", "STATE", "PROGRESS", "DURATION", "CODE"],
    statements.map((s) => [
      String(s.id),
      s.state,
      `${Math.round((s.progress ?? 0) * 100)}%`,
      s.started && s.completed ? `${((s.completed - s.started) / 1000).toFixed(3)}s` : "",
      firstLine(s.code ?? ""),
    ]),
  );
}

export function renderJson(value: unknown, format: OutputFormat, text: (v: unknown) => string): string {
  return format === "json" ? `${JSON.stringify(value, null, 2)}\n` : ensureNewline(text(value));
}

export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return "";
  return typeof v === "string" ? v : JSON.stringify(v);
}

function firstLine(code: string): string {
  const [first = "", ...rest] = code.split("\n");
  const line = first.length > 60 ? `${first.slice(0, 59)}…` : first;
  return rest.length > 0 ? `${line} …` : line;
}

function ensureNewline(s: string): string {
  return s.endsWith("\n") ? s : `${s}\n`;
}
