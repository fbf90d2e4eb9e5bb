/**
 * What a finished statement produced, as a typed value. Livy's output maps MIME types to values; the
 * richest one present decides the kind, and `data` keeps everything Livy sent.
 */
import type { z } from "zod";
import { LivyProtocolError, StatementError } from "./errors.ts";
import { MIME, type OkOutput, type Statement } from "./protocol.ts";

interface ResultBase {
  sessionId: number;
  statementId: number;
  executionCount: number | undefined;
  /** Every MIME type Livy returned, untouched. */
  data: Record<string, unknown>;
  /** `text/plain`, when present (Livy sends it beside most other types). */
  text: string | undefined;
  /** Epoch ms, when Livy reported them. */
  started: number | undefined;
  completed: number | undefined;
}

export interface TextResult extends ResultBase {
  kind: "text";
  text: string;
}

export interface JsonResult extends ResultBase {
  kind: "json";
  json: unknown;
}

export interface TableColumn {
  name: string;
  /** Livy's table type (`INT_TYPE`, ...) or Spark SQL's type (`long`, or a JSON string of a nested type). */
  type: string;
}

export interface TableResult extends ResultBase {
  kind: "table";
  columns: TableColumn[];
  rows: unknown[][];
}

export interface ImageResult extends ResultBase {
  kind: "image";
  mimeType: string;
  /** The image bytes, base64 encoded as Livy sends them. */
  base64: string;
}

export type StatementResult = TextResult | JsonResult | TableResult | ImageResult;

/**
 * The result of a finished statement, or the error it ended with. Throws StatementError for an error
 * output and LivyProtocolError when a finished statement carries no output or an unreadable one.
 */
export function statementResult(sessionId: number, statement: Statement): StatementResult {
  const output = statement.output;
  if (!output) {
    throw new LivyProtocolError(
      `statement ${statement.id} of session ${sessionId} is ${statement.state} without output`,
      JSON.stringify(statement),
      { sessionId },
    );
  }
  if (output.status === "error") {
    throw new StatementError({
      sessionId,
      statementId: statement.id,
      ename: output.ename,
      evalue: output.evalue,
      traceback: output.traceback,
    });
  }
  return interpretOutput(sessionId, statement, output);
}

function interpretOutput(sessionId: number, statement: Statement, output: OkOutput): StatementResult {
  const data = output.data;
  const textValue = data[MIME.text];
  const base: ResultBase = {
    sessionId,
    statementId: statement.id,
    executionCount: output.execution_count ?? undefined,
    data,
    text: typeof textValue === "string" ? textValue : undefined,
    started: positive(statement.started),
    completed: positive(statement.completed),
  };
  const bad = (why: string) =>
    new LivyProtocolError(`statement ${statement.id}: ${why}`, JSON.stringify(data), { sessionId });

  if (MIME.table in data) {
    const table = asTable(data[MIME.table], "headers");
    if (!table) throw bad(`unreadable ${MIME.table}`);
    return { ...base, kind: "table", ...table };
  }
  if (MIME.json in data) {
    const json = data[MIME.json];
    // Spark SQL statements answer with a JSON object {schema, data}: rows, so a table.
    const table = asTable(json, "schema");
    if (table) return { ...base, kind: "table", ...table };
    return { ...base, kind: "json", json };
  }
  const image = Object.keys(data).find((mime) => mime.startsWith("image/"));
  if (image) {
    const value = data[image];
    if (typeof value !== "string") throw bad(`${image} is not a base64 string`);
    return { ...base, kind: "image", mimeType: image, base64: value };
  }
  if (base.text !== undefined) return { ...base, kind: "text", text: base.text };
  if (Object.keys(data).length === 0) return { ...base, kind: "text", text: "" };
  // A MIME type this client does not know: keep it as JSON rather than losing it.
  return { ...base, kind: "json", json: data };
}

function positive(ms: number | null | undefined): number | undefined {
  return ms !== null && ms !== undefined && ms > 0 ? ms : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Livy's table magic is `{headers: [{name, type}], data: [[...]]}`; Spark SQL's answer is
 * `{schema: {fields: [{name, type}]}, data: [[...]]}`.
 */
function asTable(
  value: unknown,
  shape: "headers" | "schema",
): { columns: TableColumn[]; rows: unknown[][] } | null {
  if (!isRecord(value) || !Array.isArray(value.data)) return null;
  const rawColumns =
    shape === "headers" ? value.headers : isRecord(value.schema) ? value.schema.fields : null;
  if (!Array.isArray(rawColumns)) return null;
  const columns: TableColumn[] = [];
  for (const col of rawColumns) {
    if (!isRecord(col) || typeof col.name !== "string") return null;
    columns.push({
      name: col.name,
      type: typeof col.type === "string" ? col.type : JSON.stringify(col.type),
    });
  }
  const rows: unknown[][] = [];
  for (const row of value.data) {
    if (!Array.isArray(row)) return null;
    rows.push(row);
  }
  return { columns, rows };
}

/** A row of a table result as an object keyed by column name. */
export type TableRow = Record<string, unknown>;

const DATE_TYPES = new Set(["date", "timestamp", "timestamp_ntz", "DATE_TYPE", "TIMESTAMP_TYPE"]);

/**
 * The rows of a table result (Livy's `%table` magic or a SQL statement) as objects keyed by column name,
 * values as Livy sent them except date and timestamp columns, which become `Date`s. With a zod `schema`
 * each row is checked and typed by it (`z.object({id: z.number(), name: z.string()})`); a row that does
 * not match is a LivyProtocolError naming the row and the field. Anything but a table result is one too.
 */
export function tableRows(result: StatementResult): TableRow[];
export function tableRows<S extends z.ZodType>(result: StatementResult, schema: S): Array<z.output<S>>;
export function tableRows(result: StatementResult, schema?: z.ZodType): unknown[] {
  if (result.kind !== "table") {
    throw new LivyProtocolError(
      `statement ${result.statementId} gave a ${result.kind} result, not a table`,
      JSON.stringify(result.data).slice(0, 200),
      { sessionId: result.sessionId },
    );
  }
  const { columns } = result;
  return result.rows.map((cells, index) => {
    const row: TableRow = {};
    columns.forEach((col, i) => {
      const v = cells[i];
      row[col.name] =
        DATE_TYPES.has(col.type) && (typeof v === "string" || typeof v === "number") ? new Date(v) : v;
    });
    if (!schema) return row;
    const parsed = schema.safeParse(row);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    throw new LivyProtocolError(
      `statement ${result.statementId}, row ${index}: ${issue?.path.join(".") || "(row)"}: ${issue?.message ?? "does not match the schema"}`,
      JSON.stringify(cells).slice(0, 200),
      { sessionId: result.sessionId },
    );
  });
}
