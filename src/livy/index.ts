/** livy-operator's Livy client: the package's main export. */
export {
  type ClientStats,
  errorMessage,
  type ListStatementsOptions,
  type LivyAuth,
  LivyClient,
  type LivyClientOptions,
  type LivyTlsOptions,
  type PageOptions,
  type RequestOptions,
  type RetryPolicy,
  type SubmitStatementOptions,
} from "./client.ts";
export {
  isTransient,
  LivyAbortError,
  LivyError,
  type LivyErrorCode,
  LivyHttpError,
  LivyProtocolError,
  LivyTimeoutError,
  LivyUnreachableError,
  PoolQueueFullError,
  SessionGoneError,
  SessionNotUsableError,
  StatementCancelledError,
  StatementError,
} from "./errors.ts";
export {
  DEFAULT_MONITOR_OPTIONS,
  type KnownSessionState,
  type MonitorOptions,
  type MonitorStats,
} from "./monitor.ts";
export { type PooledStatement, SessionPool, type SessionPoolOptions } from "./pool.ts";
export * from "./protocol.ts";
export type {
  ImageResult,
  JsonResult,
  StatementResult,
  TableColumn,
  TableResult,
  TableRow,
  TextResult,
} from "./result.ts";
export { statementResult, tableRows } from "./result.ts";
export {
  DEFAULT_RESILIENT_RETRY,
  InteractiveSession,
  OwnedSession,
  type SessionMode,
  type SessionOptions,
  type SubmitOptions,
  type WaitForStateOptions,
} from "./session.ts";
export { type StatementEvents, StatementHandle, type StatementStateChange } from "./statement.ts";
export type { WaitOptions } from "./wait.ts";
