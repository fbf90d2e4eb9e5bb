/**
 * Apache Livy's REST protocol as this project relies on it: the one place that knows the JSON shapes,
 * the state names and what they mean. Schemas are deliberately loose: Livy 0.7 omits most session
 * fields, later versions add some, and an unknown state string must not break a client that only
 * wants to know whether it can submit.
 */
import { z } from "zod";

/** Kinds Livy accepts for a session and for a statement (`shared` sessions need a kind per statement). */
export const SESSION_KINDS = ["spark", "pyspark", "sparkr", "sql", "shared"] as const;
export type SessionKind = (typeof SESSION_KINDS)[number];
export type StatementKind = Exclude<SessionKind, "shared">;

export const SESSION_STATES = [
  "not_started",
  "starting",
  "recovering",
  "idle",
  "busy",
  "shutting_down",
  "error",
  "dead",
  "killed",
  "success",
] as const;
export type KnownSessionState = (typeof SESSION_STATES)[number];
/** A known state, or whatever a newer Livy reports (kept, never rejected). */
export type SessionState = KnownSessionState | (string & {});

/** Livy accepts statements only in these states (`busy` ones queue behind the running statement). */
export function isSessionUsable(state: SessionState): boolean {
  return state === "idle" || state === "busy";
}

/** States a session never leaves: submitting or waiting is pointless. `error` is Livy's REPL having died. */
export function isSessionTerminal(state: SessionState): boolean {
  return (
    state === "shutting_down" ||
    state === "error" ||
    state === "dead" ||
    state === "killed" ||
    state === "success"
  );
}

/** States from which a session may still become usable. */
export function isSessionStarting(state: SessionState): boolean {
  return state === "not_started" || state === "starting" || state === "recovering";
}

export const STATEMENT_STATES = [
  "waiting",
  "running",
  "available",
  "error",
  "cancelling",
  "cancelled",
] as const;
export type KnownStatementState = (typeof STATEMENT_STATES)[number];
export type StatementState = KnownStatementState | (string & {});

/**
 * Livy 0.9 has no `error` statement state (a failed statement is `available` with an error output), but
 * older servers and the docs name it; it ends a statement either way.
 */
export function isStatementDone(state: StatementState): boolean {
  return state === "available" || state === "cancelled" || state === "error";
}

export const MIME = {
  text: "text/plain",
  json: "application/json",
  table: "application/vnd.livy.table.v1+json",
  png: "image/png",
} as const;

const nullishString = z.string().nullish();
const nullishNumber = z.number().nullish();
const stringList = z.array(z.string()).nullish();

export const sessionSchema = z.looseObject({
  id: z.number().int(),
  name: nullishString,
  appId: nullishString,
  owner: nullishString,
  proxyUser: nullishString,
  state: z.string(),
  kind: nullishString,
  appInfo: z.record(z.string(), z.string().nullable()).nullish(),
  log: stringList,
  ttl: nullishString,
  idleTimeout: nullishString,
  driverMemory: nullishString,
  driverCores: nullishNumber,
  executorMemory: nullishString,
  executorCores: nullishNumber,
  conf: z.record(z.string(), z.string()).nullish(),
  archives: stringList,
  files: stringList,
  heartbeatTimeoutInSecond: nullishNumber,
  jars: stringList,
  numExecutors: nullishNumber,
  pyFiles: stringList,
  queue: nullishString,
});
export type Session = z.infer<typeof sessionSchema>;

export const sessionListSchema = z.looseObject({
  from: z.number().int(),
  total: z.number().int(),
  sessions: z.array(sessionSchema),
});
export type SessionList = z.infer<typeof sessionListSchema>;

/** A batch (`GET /batches`): the fields a list gives; its states are a session's. */
export const batchSchema = z.looseObject({
  id: z.number().int(),
  name: nullishString,
  appId: nullishString,
  state: z.string(),
});
export type Batch = z.infer<typeof batchSchema>;

export const batchListSchema = z.looseObject({
  from: z.number().int(),
  total: z.number().int(),
  sessions: z.array(batchSchema),
});
export type BatchList = z.infer<typeof batchListSchema>;

export const sessionStateSchema = z.looseObject({ id: z.number().int(), state: z.string() });
export type SessionStateResponse = z.infer<typeof sessionStateSchema>;

export const sessionLogSchema = z.looseObject({
  id: z.number().int(),
  from: z.number().int(),
  total: z.number().int(),
  log: z.array(z.string()),
});
export type SessionLog = z.infer<typeof sessionLogSchema>;

/** `data` maps a MIME type to its value: a string for text and images (base64), JSON otherwise. */
export const okOutputSchema = z.looseObject({
  status: z.literal("ok"),
  execution_count: z.number().int().nullish(),
  data: z.record(z.string(), z.unknown()),
});
export const errorOutputSchema = z.looseObject({
  status: z.literal("error"),
  execution_count: z.number().int().nullish(),
  ename: z.string(),
  evalue: z.string(),
  traceback: z.array(z.string()).default([]),
});
export const statementOutputSchema = z.discriminatedUnion("status", [okOutputSchema, errorOutputSchema]);
export type OkOutput = z.infer<typeof okOutputSchema>;
export type ErrorOutput = z.infer<typeof errorOutputSchema>;
export type StatementOutput = z.infer<typeof statementOutputSchema>;

export const statementSchema = z.looseObject({
  id: z.number().int(),
  code: z.string().nullish(),
  state: z.string(),
  output: statementOutputSchema.nullish(),
  progress: z.number().nullish(),
  /** Epoch milliseconds; 0 (or absent on old servers) until it happened. */
  started: z.number().nullish(),
  completed: z.number().nullish(),
});
export type Statement = z.infer<typeof statementSchema>;

export const statementListSchema = z.looseObject({
  total_statements: z.number().int(),
  statements: z.array(statementSchema),
});
export type StatementList = z.infer<typeof statementListSchema>;

export const versionSchema = z.looseObject({
  version: z.string(),
  user: nullishString,
  revision: nullishString,
  branch: nullishString,
  date: nullishString,
  url: nullishString,
});
export type LivyVersion = z.infer<typeof versionSchema>;

export const completionSchema = z.looseObject({ candidates: z.array(z.string()) });
export type CompletionResponse = z.infer<typeof completionSchema>;

/** `{"msg": ...}`: what Livy answers to deletes and cancels, and the shape of most error bodies. */
export const messageSchema = z.looseObject({ msg: z.string() });
export type LivyMessage = z.infer<typeof messageSchema>;

/**
 * The body of `POST /sessions`. Livy rejects unknown fields with a 400, so a field is only sent when set:
 * `idleTimeout` exists from 0.9 on and must not reach older servers unless asked for.
 */
export interface CreateSessionRequest {
  kind?: SessionKind;
  proxyUser?: string;
  jars?: string[];
  pyFiles?: string[];
  files?: string[];
  archives?: string[];
  /** JVM memory strings such as `"1g"`, `"512m"`. */
  driverMemory?: string;
  driverCores?: number;
  executorMemory?: string;
  executorCores?: number;
  numExecutors?: number;
  queue?: string;
  name?: string;
  conf?: Record<string, string>;
  heartbeatTimeoutInSecond?: number;
  /** Durations as Livy parses them: `"10m"`, `"1h"`. */
  ttl?: string;
  idleTimeout?: string;
}

export interface ExecuteRequest {
  code: string;
  kind?: StatementKind;
}

export interface CompletionRequest {
  code: string;
  kind: StatementKind;
  cursor: number;
}

export type StatementOrder = "asc" | "desc";

/**
 * Livy's own error strings that say something about the session rather than the request. They are matched
 * here, next to the schemas, so that no other module parses message text.
 */
export const LIVY_MESSAGES = {
  /** 404 of any `/sessions/{id}...` route: `Session '7' not found.` */
  sessionNotFound: /^Session '([^']*)' not found\.?$/,
  /** 404 of DELETE on a session that is already stopping. */
  sessionAlreadyStopped: /^Session (\S+) already stopped\.?$/,
  /** 400 when reading statements of a session that is no longer active. */
  sessionNotActive: /Session isn't active/,
  /** 500 (a Java exception string) when posting to a session that is not running, e.g. still `starting`. */
  sessionInState: /Session is in state (\w+)/,
  /** 400 of POST /sessions while `livy.server.session.max-creation` sessions are starting: retry later. */
  tooManySessions: /Rejected, too many sessions are being created/,
} as const;
