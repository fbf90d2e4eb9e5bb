/**
 * What livyctl prints and which exit code it ends with: pure functions, so the CLI's contract is tested
 * without a terminal.
 */
import { stringify } from "yaml";
import { type LivySession, phaseOf, readyCondition } from "../api/index.ts";
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
import {
  isKubeApiError,
  KubeconfigError,
  KubernetesUnreachableError,
  LivySessionNotReadyError,
} from "../livy/kube-errors.ts";

export const OUTPUT_FORMATS = ["text", "json", "yaml", "wide", "name"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** A usage error: a bad flag or argument (exit 2). */
export class UsageError extends Error {}

/** Exit codes are API: scripts branch on them. */
export const EXIT = {
  ok: 0,
  /** The statement ran and failed, or was cancelled. */
  statementFailed: 1,
  /** A bad flag or argument, or an object the API server refused as invalid (422). */
  usage: 2,
  /**
   * The session is not usable: the Livy session is gone, dead or (without --wait) still starting, or the
   * LivySession is Failed, Suspended, being deleted, or (with --wait 0) not Ready.
   */
  sessionNotUsable: 3,
  /** Livy did not answer, or not in time (--request-timeout), or the statement outlived --timeout. */
  unreachable: 4,
  /** Livy answered with an error or with something that is not Livy's protocol. */
  livyError: 5,
  /** Kubernetes: the API server could not be reached, or refused (401, 403, 404 no such LivySession, 5xx). */
  kubernetes: 6,
  /** The kubeconfig is missing, unreadable, malformed, or lacks the context asked for. */
  kubeconfig: 7,
  /** Interrupted (Ctrl-C): the statement was cancelled in Livy. */
  interrupted: 130,
} as const;

export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return EXIT.usage;
  if (err instanceof StatementError || err instanceof StatementCancelledError) return EXIT.statementFailed;
  if (err instanceof SessionGoneError || err instanceof SessionNotUsableError) return EXIT.sessionNotUsable;
  if (err instanceof LivySessionNotReadyError) return EXIT.sessionNotUsable;
  if (err instanceof LivyUnreachableError || err instanceof LivyTimeoutError) return EXIT.unreachable;
  if (err instanceof LivyAbortError) return EXIT.interrupted;
  if (err instanceof LivyHttpError || err instanceof LivyProtocolError) return EXIT.livyError;
  if (err instanceof KubeconfigError) return EXIT.kubeconfig;
  if (isKubeApiError(err)) return err.status === 422 ? EXIT.usage : EXIT.kubernetes;
  if (err instanceof KubernetesUnreachableError) return EXIT.kubernetes;
  return EXIT.livyError;
}

/** The error for stderr (text) or as a JSON object (json). */
export function renderError(err: unknown, format: OutputFormat): string {
  if (format === "json") return `${JSON.stringify({ error: errorJson(err) }, null, 2)}\n`;
  if (format === "yaml") return stringify({ error: errorJson(err) });
  if (isKubeApiError(err)) return `error: ${kubeApiMessage(err)}\n`;
  if (err instanceof StatementError) {
    // Livy's traceback lines carry their own newlines.
    const tb = err.traceback.join("");
    return tb.includes(`${err.ename}`) ? ensureNewline(tb) : `${tb}${err.ename}: ${err.evalue}\n`;
  }
  return `error: ${err instanceof Error ? err.message : String(err)}\n`;
}

/** The API server's refusal, said as Kubernetes': kubectl prints `Error from server (Reason): message`. */
export function kubeApiMessage(err: { status: number; reason: string; message: string }): string {
  const what =
    err.status === 401
      ? " (the kubeconfig's credentials were not accepted)"
      : err.status === 403
        ? " (the kubeconfig's user lacks the permission)"
        : "";
  return `Kubernetes API server answered ${err.status}${err.reason ? ` ${err.reason}` : ""}: ${err.message}${what}`;
}

function errorJson(err: unknown): Record<string, unknown> {
  if (isKubeApiError(err))
    return { code: "KUBERNETES_API", status: err.status, reason: err.reason, message: err.message };
  if (err instanceof KubernetesUnreachableError)
    return {
      code: err.code,
      server: err.server,
      context: err.context,
      reason: err.reason,
      message: err.message,
    };
  if (err instanceof KubeconfigError) return { code: err.code, message: err.message };
  if (err instanceof LivySessionNotReadyError)
    return {
      code: err.code,
      namespace: err.namespace,
      name: err.resourceName,
      phase: err.phase,
      reason: err.reason,
      message: err.message,
    };
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
  if (format === "yaml") return stringify(result);
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
  if (format === "yaml") return stringify(sessions);
  if (format === "name") return sessions.map((s) => `${s.id}\n`).join("");
  return renderTable(
    ["ID", "NAME", "KIND", "STATE", "APP ID"],
    sessions.map((s) => [String(s.id), s.name ?? "", s.kind ?? "", s.state, s.appId ?? ""]),
  );
}

export function renderStatements(statements: Statement[], format: OutputFormat): string {
  if (format === "json") return `${JSON.stringify(statements, null, 2)}\n`;
  if (format === "yaml") return stringify(statements);
  if (format === "name") return statements.map((s) => `${s.id}\n`).join("");
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
  if (format === "json") return `${JSON.stringify(value, null, 2)}\n`;
  if (format === "yaml") return stringify(value);
  return ensureNewline(text(value));
}

// --------------------------------------------------------------------------------- LivySessions

type LivySessionLike = Pick<LivySession, "metadata"> & {
  apiVersion?: string;
  kind?: string;
  spec?: Partial<LivySession["spec"]>;
  status?: LivySession["status"];
};

/** `kubectl get lvs`'s columns (the CRD's printer columns), with `-o wide` adding the rest. */
export function renderLivySessions(
  items: LivySessionLike[],
  format: OutputFormat,
  opts: { allNamespaces?: boolean; now?: Date } = {},
): string {
  if (format === "json")
    return `${JSON.stringify(items.length === 1 ? items[0] : { apiVersion: "v1", kind: "List", items }, null, 2)}\n`;
  if (format === "yaml")
    return stringify(items.length === 1 ? items[0] : { apiVersion: "v1", kind: "List", items });
  if (format === "name") return items.map((i) => `livysession.livy.dev/${i.metadata?.name ?? ""}\n`).join("");
  const now = opts.now ?? new Date();
  const wide = format === "wide";
  const header = [
    ...(opts.allNamespaces ? ["NAMESPACE"] : []),
    "NAME",
    "PHASE",
    "READY",
    "REASON",
    "STATE",
    "ENDPOINT",
    "AGE",
    ...(wide ? ["KIND", "RESTARTS", "LAST-ACTIVITY", "MESSAGE"] : []),
  ];
  const rows = items.map((i) => {
    const ready = readyCondition(i);
    return [
      ...(opts.allNamespaces ? [i.metadata?.namespace ?? ""] : []),
      i.metadata?.name ?? "",
      phaseOf(i),
      ready?.status ?? "",
      ready?.reason ?? "",
      i.status?.livySessionState ?? "",
      i.status?.sessionURL ?? "",
      age(i.metadata?.creationTimestamp, now),
      ...(wide
        ? [
            i.spec?.kind ?? "",
            String(i.status?.restarts ?? 0),
            i.status?.lastActivityTime ? `${age(i.status.lastActivityTime, now)} ago` : "",
            firstLine(ready?.message || i.status?.message || ""),
          ]
        : []),
    ];
  });
  if (rows.length === 0) return "";
  return renderTable(header, rows);
}

/** kubectl's short ages: 41s, 5m12s, 3h4m, 2d5h. */
export function age(timestamp: string | Date | undefined, now: Date): string {
  if (!timestamp) return "<unknown>";
  const secs = Math.max(0, Math.floor((now.getTime() - new Date(timestamp).getTime()) / 1000));
  if (secs < 120) return `${secs}s`;
  const mins = Math.floor(secs / 60);
  if (mins < 10) return `${mins}m${secs % 60 ? `${secs % 60}s` : ""}`;
  if (mins < 180) return `${mins}m`;
  const hours = Math.floor(mins / 60);
  if (hours < 48) return `${hours}h${mins % 60 ? `${mins % 60}m` : ""}`;
  const days = Math.floor(hours / 24);
  return days < 8 ? `${days}d${hours % 24 ? `${hours % 24}h` : ""}` : `${days}d`;
}

export interface EventLike {
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  lastTimestamp?: string | null;
  eventTime?: string | null;
  firstTimestamp?: string | null;
  metadata?: { creationTimestamp?: string };
}

/** `kubectl describe`'s layout for a LivySession: its spec, status, conditions and recent events. */
export function describeLivySession(ls: LivySessionLike, events: EventLike[], now = new Date()): string {
  const out: string[] = [];
  const line = (k: string, v: unknown, indent = 0) => {
    if (v === undefined || v === null || v === "") return;
    out.push(`${" ".repeat(indent)}${`${k}:`.padEnd(22 - indent)}${String(v)}`);
  };
  line("Name", ls.metadata?.name);
  line("Namespace", ls.metadata?.namespace);
  const labels = Object.entries(ls.metadata?.labels ?? {}).map(([k, v]) => `${k}=${v}`);
  line("Labels", labels.join(", ") || "<none>");
  line(
    "Created",
    ls.metadata?.creationTimestamp
      ? `${new Date(ls.metadata.creationTimestamp).toISOString()} (${age(ls.metadata.creationTimestamp, now)} ago)`
      : undefined,
  );
  out.push("Spec:");
  const spec = ls.spec ?? {};
  line("Kind", spec.kind, 2);
  line("Suspend", spec.suspend, 2);
  line("Idle Timeout", spec.idleTimeout, 2);
  line("Startup Timeout", spec.startupTimeout, 2);
  line("Failure Policy", spec.failurePolicy, 2);
  line("Max Restarts", spec.maxRestarts, 2);
  line("Image", spec.server?.image, 2);
  if (spec.session && Object.keys(spec.session).length > 0) line("Session", JSON.stringify(spec.session), 2);
  line("Auth", spec.auth ? `${spec.auth.type} (Secret ${spec.auth.secretName})` : undefined, 2);
  const st = ls.status ?? {};
  out.push("Status:");
  line("Phase", phaseOf(ls), 2);
  line("Endpoint", st.sessionURL, 2);
  line(
    "Livy Session",
    st.livySessionId !== undefined ? `${st.livySessionId} (${st.livySessionState ?? "?"})` : undefined,
    2,
  );
  line("Last Activity", st.lastActivityTime, 2);
  line("Ready Since", st.readyTime, 2);
  line("Idle Since", st.idleSince, 2);
  line("Restarts", st.restarts, 2);
  line("Message", st.message, 2);
  out.push("Conditions:");
  const conds = st.conditions ?? [];
  if (conds.length === 0) out.push("  <none>");
  else
    for (const l of renderTable(
      ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"],
      conds.map((c) => [
        c.type,
        c.status,
        c.reason,
        age(c.lastTransitionTime, now),
        firstLine(c.message ?? ""),
      ]),
    )
      .trimEnd()
      .split("\n"))
      out.push(`  ${l}`);
  out.push("Events:");
  if (events.length === 0) out.push("  <none>");
  else
    for (const l of renderTable(
      ["TYPE", "REASON", "AGE", "MESSAGE"],
      events.map((e) => [
        e.type ?? "",
        e.reason ?? "",
        age(
          e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp ?? undefined,
          now,
        ) + (e.count && e.count > 1 ? ` (x${e.count})` : ""),
        firstLine(e.message ?? ""),
      ]),
    )
      .trimEnd()
      .split("\n"))
      out.push(`  ${l}`);
  return `${out.join("\n")}\n`;
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
