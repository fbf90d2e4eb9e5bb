/**
 * The stand-in's interpreters: tiny and deterministic, just enough to give the outputs real Livy gives
 * (test/testbed/livy-smoke.ts recorded them) for the code the tests send.
 *
 * pyspark, one statement per line or `;`: `import ...`, `name = expr`, `print(expr)`, `time.sleep(S)` /
 * `sleep S`, `raise Name("msg")`, `spark.range(N).count()`, `len(x)`, expressions over ints, floats, strings, bools,
 * None, lists, tuples and dicts with + - * / // % ** and parentheses, and Livy's magics `%json name` and
 * `%table name`. spark (Scala): `spark.range(N).count()`, arithmetic, `val x = ...`, `Thread.sleep(ms)`.
 * sql: `SELECT <literals or id expressions> [FROM range(N)]`. Anything else is echoed back as text.
 */

export type Py =
  | { t: "int"; v: number }
  | { t: "float"; v: number }
  | { t: "str"; v: string }
  | { t: "bool"; v: boolean }
  | { t: "none" }
  | { t: "list"; v: Py[] }
  | { t: "tuple"; v: Py[] }
  | { t: "dict"; v: Array<[Py, Py]> };

export type Output =
  | { status: "ok"; execution_count: number; data: Record<string, unknown> }
  | { status: "error"; execution_count: number; ename: string; evalue: string; traceback: string[] };

export interface Plan {
  /** Time the statement takes, from sleeps. */
  sleepMs: number;
  /** It runs a Spark job: progress grows while it runs, and cancelling interrupts it at once. */
  sparkJob: boolean;
  output: Output;
}

/** What a session's interpreters remember between statements. */
export interface Scope {
  vars: Map<string, Py>;
  /** The Scala REPL numbers its results res0, res1, ... */
  scalaResults: number;
}

export function newScope(): Scope {
  return { vars: new Map(), scalaResults: 0 };
}

class PyError extends Error {
  readonly ename: string;
  readonly evalue: string;

  constructor(ename: string, evalue: string) {
    super(`${ename}: ${evalue}`);
    this.ename = ename;
    this.evalue = evalue;
  }
}

const none: Py = { t: "none" };
const int = (v: number): Py => ({ t: "int", v });
const float = (v: number): Py => ({ t: "float", v });

/**
 * Livy's fake_shell cuts the traceback above the `<stdin>` frame, so a top-level error keeps only the
 * header and the exception line.
 */
export function pythonError(executionCount: number, ename: string, evalue: string): Output {
  return {
    status: "error",
    execution_count: executionCount,
    ename,
    evalue,
    traceback: ["Traceback (most recent call last):\n", evalue ? `${ename}: ${evalue}\n` : `${ename}\n`],
  };
}

/** Runs `code` as a statement of `kind` (`spark`, `pyspark`, `sql`; others echo). */
export function run(code: string, kind: string, scope: Scope, executionCount: number): Plan {
  if (kind === "spark") return runScala(code, scope, executionCount);
  if (kind === "sql") return runSql(code, executionCount);
  if (kind === "pyspark") return runPython(code, scope, executionCount);
  return { sleepMs: 0, sparkJob: false, output: ok(executionCount, { "text/plain": code }) };
}

function ok(executionCount: number, data: Record<string, unknown>): Output {
  return { status: "ok", execution_count: executionCount, data };
}

// --- pyspark -------------------------------------------------------------------------------------

function runPython(code: string, scope: Scope, executionCount: number): Plan {
  let sleepMs = 0;
  let sparkJob = false;
  let stdout = "";
  let result: Record<string, unknown> = {};
  const plan = (output: Output): Plan => ({ sleepMs, sparkJob, output });
  try {
    for (const line of splitStatements(code)) {
      result = {};
      if (line.startsWith("%")) {
        result = magic(line, scope.vars);
        continue;
      }
      if (/^(import|from)\s/.test(line)) continue;
      const sleep = /^(?:time\.)?sleep\s*(?:\(\s*([0-9.]+)\s*\)|\s+([0-9.]+))$/.exec(line);
      if (sleep) {
        sleepMs += Number(sleep[1] ?? sleep[2]) * 1000;
        continue;
      }
      const raise = /^raise\s+([A-Za-z_]\w*)\s*(?:\(\s*(?:(['"])(.*)\2)?\s*\))?$/.exec(line);
      if (raise) throw new PyError(raise[1] ?? "Exception", raise[3] ?? "");
      const count = /^spark\.range\(\s*(\d+)\s*\)\.count\(\)$/.exec(line);
      if (count) {
        sparkJob = true;
        stdout += `${count[1]}\n`;
        continue;
      }
      const print = /^print\((.*)\)$/.exec(line);
      if (print) {
        stdout += `${str(evaluate(print[1] ?? "", scope.vars))}\n`;
        continue;
      }
      const assign = /^([A-Za-z_]\w*)\s*=(?!=)\s*(.+)$/.exec(line);
      if (assign) {
        scope.vars.set(assign[1] ?? "", evaluate(assign[2] ?? "", scope.vars));
        continue;
      }
      const tokens = tokenize(line);
      if (!tokens) {
        // Not in the stand-in's Python: echo it, so tests can still tell outputs apart.
        stdout += `${line}\n`;
        continue;
      }
      const value = new Parser(tokens, scope.vars).parseAll();
      // The interactive displayhook prints the repr of an expression statement that is not None.
      if (value.t !== "none") stdout += `${repr(value)}\n`;
    }
  } catch (err) {
    if (err instanceof PyError) return plan(pythonError(executionCount, err.ename, err.evalue));
    throw err;
  }
  // fake_shell: text/plain is the result's text followed by stdout, right-trimmed, and present when
  // non-empty or when there is nothing else.
  const text = `${typeof result["text/plain"] === "string" ? result["text/plain"] : ""}${stdout}`.replace(
    /\s+$/,
    "",
  );
  const { "text/plain": _ignored, ...rest } = result;
  const data: Record<string, unknown> = { ...rest };
  if (text || Object.keys(rest).length === 0) data["text/plain"] = text;
  return plan(ok(executionCount, data));
}

/**
 * `%json name` / `%table name` look up a variable. A missing one hits a bug in Livy's fake_shell: the error
 * reply ends up as the *data* of an `ok` output, which real Livy 0.9 shows exactly like this.
 */
function magic(line: string, vars: Map<string, Py>): Record<string, unknown> {
  const [name = "", arg] = line.slice(1).split(/ (.*)/s, 2);
  const replyError = (ename: string, evalue: string) => ({
    msg_type: "execute_reply",
    content: { ename, evalue, traceback: [`${ename}: ${evalue}\n`], status: "error" },
  });
  if (name !== "json" && name !== "table") {
    throw new PyError(
      "UnknownMagic",
      name ? `unknown magic command '${name}'` : "magic command not specified",
    );
  }
  const value = arg === undefined ? undefined : vars.get(arg);
  if (arg === undefined || value === undefined)
    return replyError("KeyError", repr({ t: "str", v: arg ?? "" }));
  if (name === "json") return { "application/json": toJson(value) };
  const table = magicTable(value);
  return "error" in table
    ? replyError("Exception", table.error)
    : { "application/vnd.livy.table.v1+json": table };
}

function toJson(v: Py): unknown {
  switch (v.t) {
    case "int":
    case "float":
    case "str":
    case "bool":
      return v.v;
    case "none":
      return null;
    case "list":
    case "tuple":
      return v.v.map(toJson);
    case "dict":
      return Object.fromEntries(
        v.v.map(([k, val]) => [k.t === "str" ? k.v : String(toJson(k)), toJson(val)]),
      );
  }
}

const TABLE_TYPES: Record<Py["t"], string> = {
  none: "NULL_TYPE",
  bool: "BOOLEAN_TYPE",
  int: "INT_TYPE",
  float: "DOUBLE_TYPE",
  str: "STRING_TYPE",
  list: "ARRAY_TYPE",
  tuple: "ARRAY_TYPE",
  dict: "MAP_TYPE",
};

/** fake_shell's magic_table: rows of lists (columns by index) or dicts (columns by sorted key). */
function magicTable(
  value: Py,
): { headers: { name: string; type: string }[]; data: unknown[][] } | { error: string } {
  const rows = value.t === "list" || value.t === "tuple" ? value.v : [value];
  const headers = new Map<string, { name: string; type: string }>();
  const data: unknown[][] = [];
  for (const row of rows) {
    const cells: Array<[string, Py]> =
      row.t === "dict"
        ? [...row.v]
            .map(([k, v]): [string, Py] => [str(k), v])
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        : (row.t === "list" || row.t === "tuple" ? row.v : [row]).map((v, i): [string, Py] => [String(i), v]);
    const cols: unknown[] = [];
    for (const [name, cell] of cells) {
      const type = TABLE_TYPES[cell.t];
      const header = headers.get(name);
      if (!header) headers.set(name, { name, type });
      else if (type !== "NULL_TYPE" && header.type !== type) {
        if (header.type !== "NULL_TYPE") return { error: "table rows have different types" };
        header.type = type;
      }
      cols.push(toJson(cell));
    }
    data.push(cols);
  }
  const sorted = [...headers.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, h]) => h);
  return { headers: sorted, data };
}

function splitStatements(code: string): string[] {
  const out: string[] = [];
  for (const rawLine of code.split("\n")) {
    if (rawLine.trimStart().startsWith("%")) {
      out.push(rawLine.trim());
      continue;
    }
    let current = "";
    let quote: string | undefined;
    for (const ch of rawLine) {
      if (quote) {
        if (ch === quote) quote = undefined;
      } else if (ch === "'" || ch === '"') quote = ch;
      else if (ch === "#") break;
      else if (ch === ";") {
        out.push(current.trim());
        current = "";
        continue;
      }
      current += ch;
    }
    out.push(current.trim());
  }
  return out.filter((s) => s.length > 0);
}

type Token =
  | { t: "num"; v: Py }
  | { t: "str"; v: string }
  | { t: "name"; v: string }
  | { t: "op"; v: string };

function tokenize(src: string): Token[] | null {
  const tokens: Token[] = [];
  const re =
    /\s*(?:(\d+\.\d*|\.\d+|\d+)|(['"])((?:(?!\2).)*)\2|([A-Za-z_]\w*)|(\*\*|\/\/|[-+*/%()[\]{},:]))/y;
  let pos = 0;
  while (pos < src.length) {
    if (/^\s*$/.test(src.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) return null;
    pos = re.lastIndex;
    if (m[1] !== undefined)
      tokens.push({ t: "num", v: m[1].includes(".") ? float(Number(m[1])) : int(Number(m[1])) });
    else if (m[2] !== undefined) tokens.push({ t: "str", v: m[3] ?? "" });
    else if (m[4] !== undefined) tokens.push({ t: "name", v: m[4] });
    else if (m[5] !== undefined) tokens.push({ t: "op", v: m[5] });
  }
  return tokens.length > 0 ? tokens : null;
}

function evaluate(src: string, vars: Map<string, Py>): Py {
  const tokens = tokenize(src);
  if (!tokens) throw new PyError("SyntaxError", "invalid syntax");
  return new Parser(tokens, vars).parseAll();
}

class Parser {
  readonly #tokens: Token[];
  readonly #vars: Map<string, Py>;
  #i = 0;

  constructor(tokens: Token[], vars: Map<string, Py>) {
    this.#tokens = tokens;
    this.#vars = vars;
  }

  parseAll(): Py {
    const v = this.#sum();
    if (this.#i < this.#tokens.length) throw new PyError("SyntaxError", "invalid syntax");
    return v;
  }

  #op(...ops: string[]): string | undefined {
    const tok = this.#tokens[this.#i];
    return tok?.t === "op" && ops.includes(tok.v) ? tok.v : undefined;
  }

  #expect(op: string): void {
    if (!this.#op(op)) throw new PyError("SyntaxError", "invalid syntax");
    this.#i++;
  }

  #sum(): Py {
    let v = this.#term();
    for (let op = this.#op("+", "-"); op; op = this.#op("+", "-")) {
      this.#i++;
      v = binary(op, v, this.#term());
    }
    return v;
  }

  #term(): Py {
    let v = this.#unary();
    for (let op = this.#op("*", "/", "//", "%"); op; op = this.#op("*", "/", "//", "%")) {
      this.#i++;
      v = binary(op, v, this.#unary());
    }
    return v;
  }

  #unary(): Py {
    const op = this.#op("-", "+");
    if (op) {
      this.#i++;
      const v = this.#unary();
      return op === "-" ? binary("*", int(-1), v) : v;
    }
    return this.#power();
  }

  #power(): Py {
    const base = this.#atom();
    if (this.#op("**")) {
      this.#i++;
      return binary("**", base, this.#unary());
    }
    return base;
  }

  /** Comma-separated expressions up to `close`; a trailing comma is allowed, as in Python. */
  #items<T>(close: string, item: () => T): { items: T[]; comma: boolean } {
    const items: T[] = [];
    let comma = false;
    while (!this.#op(close)) {
      items.push(item());
      comma = false;
      if (!this.#op(",")) break;
      this.#i++;
      comma = true;
    }
    this.#expect(close);
    return { items, comma };
  }

  #atom(): Py {
    const tok = this.#tokens[this.#i++];
    if (!tok) throw new PyError("SyntaxError", "invalid syntax");
    if (tok.t === "num") return tok.v;
    if (tok.t === "str") return { t: "str", v: tok.v };
    if (tok.t === "name") {
      if (tok.v === "None") return none;
      if (tok.v === "True" || tok.v === "False") return { t: "bool", v: tok.v === "True" };
      if (tok.v === "len" && !this.#vars.has("len") && this.#op("(")) {
        this.#i++;
        const [arg] = this.#items(")", () => this.#sum()).items;
        if (arg?.t === "list" || arg?.t === "tuple" || arg?.t === "dict")
          return { t: "int", v: arg.v.length };
        if (arg?.t === "str") return { t: "int", v: arg.v.length };
        throw new PyError("TypeError", `object of type '${arg?.t ?? "NoneType"}' has no len()`);
      }
      const value = this.#vars.get(tok.v);
      if (!value) throw new PyError("NameError", `name '${tok.v}' is not defined`);
      return value;
    }
    if (tok.v === "(") {
      const { items, comma } = this.#items(")", () => this.#sum());
      if (items.length === 1 && !comma && items[0]) return items[0];
      return { t: "tuple", v: items };
    }
    if (tok.v === "[") return { t: "list", v: this.#items("]", () => this.#sum()).items };
    if (tok.v === "{") {
      const { items } = this.#items("}", (): [Py, Py] => {
        const key = this.#sum();
        this.#expect(":");
        return [key, this.#sum()];
      });
      return { t: "dict", v: items };
    }
    throw new PyError("SyntaxError", "invalid syntax");
  }
}

function typeName(v: Py): string {
  return v.t === "none" ? "NoneType" : v.t;
}

function numeric(v: Py): number | undefined {
  if (v.t === "int" || v.t === "float") return v.v;
  if (v.t === "bool") return v.v ? 1 : 0;
  return undefined;
}

function binary(op: string, a: Py, b: Py): Py {
  const x = numeric(a);
  const y = numeric(b);
  if (x === undefined || y === undefined) {
    if (op === "+" && a.t === "str" && b.t === "str") return { t: "str", v: a.v + b.v };
    if (op === "+" && a.t === "list" && b.t === "list") return { t: "list", v: [...a.v, ...b.v] };
    if (op === "*" && a.t === "str" && b.t === "int") return { t: "str", v: a.v.repeat(Math.max(0, b.v)) };
    if (op === "+" && a.t === "str")
      throw new PyError("TypeError", `can only concatenate str (not "${typeName(b)}") to str`);
    throw new PyError(
      "TypeError",
      `unsupported operand type(s) for ${op}: '${typeName(a)}' and '${typeName(b)}'`,
    );
  }
  const isFloat = a.t === "float" || b.t === "float";
  const wrap = (r: number, asFloat = isFloat): Py => (asFloat ? float(r) : int(r));
  switch (op) {
    case "+":
      return wrap(x + y);
    case "-":
      return wrap(x - y);
    case "*":
      return wrap(x * y);
    case "/":
      if (y === 0)
        throw new PyError("ZeroDivisionError", isFloat ? "float division by zero" : "division by zero");
      return wrap(x / y, true);
    case "//":
      if (y === 0) {
        throw new PyError(
          "ZeroDivisionError",
          isFloat ? "float floor division by zero" : "integer division or modulo by zero",
        );
      }
      return wrap(Math.floor(x / y));
    case "%":
      if (y === 0)
        throw new PyError("ZeroDivisionError", isFloat ? "float modulo" : "integer modulo by zero");
      return wrap(x - y * Math.floor(x / y));
    case "**":
      return wrap(x ** y, isFloat || y < 0);
    default:
      throw new PyError("SyntaxError", "invalid syntax");
  }
}

function str(v: Py): string {
  return v.t === "str" ? v.v : repr(v);
}

/** Python's repr. */
export function repr(v: Py): string {
  switch (v.t) {
    case "none":
      return "None";
    case "bool":
      return v.v ? "True" : "False";
    case "int":
      return String(v.v);
    case "float":
      if (!Number.isFinite(v.v)) return Number.isNaN(v.v) ? "nan" : v.v > 0 ? "inf" : "-inf";
      return Number.isInteger(v.v) ? `${v.v}.0` : String(v.v);
    case "str": {
      const q = v.v.includes("'") && !v.v.includes('"') ? '"' : "'";
      return `${q}${v.v.replaceAll("\\", "\\\\").replaceAll(q, `\\${q}`).replaceAll("\n", "\\n")}${q}`;
    }
    case "list":
      return `[${v.v.map(repr).join(", ")}]`;
    case "tuple":
      return v.v.length === 1 ? `(${repr(v.v[0] ?? none)},)` : `(${v.v.map(repr).join(", ")})`;
    case "dict":
      return `{${v.v.map(([k, val]) => `${repr(k)}: ${repr(val)}`).join(", ")}}`;
  }
}

// --- spark (Scala) -------------------------------------------------------------------------------

/** Whole-line comments: Scala's REPL joins a comment line to the next, Spark SQL's lexer skips them. */
function withoutCommentLines(code: string, prefix: string): string {
  return code
    .split("\n")
    .filter((l) => !l.trimStart().startsWith(prefix))
    .join("\n");
}

function runScala(code: string, scope: Scope, executionCount: number): Plan {
  const line = withoutCommentLines(code, "//").trim();
  const out = (text: string, extra: Partial<Plan> = {}): Plan => ({
    sleepMs: 0,
    sparkJob: false,
    ...extra,
    output: ok(executionCount, { "text/plain": text }),
  });
  const error = (evalue: string, traceback: string[]): Plan => ({
    sleepMs: 0,
    sparkJob: false,
    output: { status: "error", execution_count: executionCount, ename: "Error", evalue, traceback },
  });
  if (/[=+\-*/(,]\s*$/.test(line)) return error("incomplete statement", []);
  const sleep = /^Thread\.sleep\(\s*(\d+)L?\s*\)$/.exec(line);
  if (sleep) return out("", { sleepMs: Number(sleep[1]) });
  const count = /^spark\.range\(\s*(\d+)L?\s*\)\.count\(\)$/.exec(line);
  if (count) return out(`res${scope.scalaResults++}: Long = ${count[1]}\n`, { sparkJob: true });
  const val = /^val\s+([A-Za-z_]\w*)\s*=\s*(.+)$/.exec(line);
  const expr = val ? (val[2] ?? "") : line;
  const tokens = tokenize(expr.replaceAll('"', "'"));
  if (!tokens) return out(code);
  let value: Py;
  try {
    value = new Parser(tokens, new Map()).parseAll();
  } catch (err) {
    if (err instanceof PyError && err.ename === "ZeroDivisionError") {
      return error("java.lang.ArithmeticException: / by zero", ["  ... 51 elided\n"]);
    }
    return out(code);
  }
  // Scala's Int division truncates; the Python evaluator made it a float.
  if (value.t === "float" && !/\d\.\d*|\.\d/.test(expr)) value = int(Math.trunc(value.v));
  const [type, text] =
    value.t === "int"
      ? ["Int", String(value.v)]
      : value.t === "float"
        ? ["Double", repr(value)]
        : value.t === "str"
          ? ["String", value.v]
          : ["Any", repr(value)];
  const name = val ? val[1] : `res${scope.scalaResults++}`;
  return out(`${name}: ${type} = ${text}\n`);
}

// --- sql -----------------------------------------------------------------------------------------

function runSql(code: string, executionCount: number): Plan {
  const sql = withoutCommentLines(code, "--").trim().replace(/;$/, "");
  const plan = (output: Output): Plan => ({ sleepMs: 0, sparkJob: true, output });
  const error = (evalue: string, frame: string): Plan =>
    plan({ status: "error", execution_count: executionCount, ename: "Error", evalue, traceback: [frame] });
  const m = /^select\s+(.+?)(?:\s+from\s+(.+))?$/is.exec(sql);
  if (!m) {
    return error(
      `\n[PARSE_SYNTAX_ERROR] Syntax error at or near '${sql.split(/\s+/)[0] ?? ""}'.(line 1, pos 0)\n\n== SQL ==\n${sql}\n^^^\n`,
      "org.apache.spark.sql.catalyst.parser.ParseException.withCommand(parsers.scala:257)",
    );
  }
  const from = m[2]?.trim();
  const range = from === undefined ? undefined : /^range\(\s*(\d+)\s*\)$/i.exec(from);
  if (from !== undefined && !range) {
    return error(
      `[TABLE_OR_VIEW_NOT_FOUND] The table or view \`${from}\` cannot be found. Verify the spelling and correctness of the schema and catalog.\nIf you did not qualify the name with a schema, verify the current_schema() output, or qualify the name with the correct schema and catalog.\nTo tolerate the error on drop use DROP VIEW IF EXISTS or DROP TABLE IF EXISTS.; line 1 pos ${sql.toLowerCase().indexOf(from.toLowerCase())};\n'Project [*]\n+- 'UnresolvedRelation [${from}], [], false\n`,
      "org.apache.spark.sql.catalyst.analysis.package$AnalysisErrorAt.tableNotFound(package.scala:87)",
    );
  }
  const rows = range ? Number(range[1]) : 1;
  const columns: Array<{ name: string; type: string; at: (id: number) => unknown }> = [];
  for (const raw of (m[1] ?? "").split(",")) {
    const item = /^(.+?)(?:\s+as\s+(\w+))?$/i.exec(raw.trim());
    const expr = item?.[1]?.trim() ?? "";
    const alias = item?.[2];
    const lit = /^(\d+)$|^'([^']*)'$/.exec(expr);
    const idExpr = /^id(?:\s*([*+-])\s*(\d+))?$/i.exec(expr);
    if (lit) {
      const value = lit[1] !== undefined ? Number(lit[1]) : (lit[2] ?? "");
      columns.push({
        name: alias ?? String(value),
        type: typeof value === "number" ? "integer" : "string",
        at: () => value,
      });
    } else if (idExpr && range) {
      const [, op, k] = idExpr;
      const n = Number(k ?? 0);
      const at = (id: number) => (op === "*" ? id * n : op === "+" ? id + n : op === "-" ? id - n : id);
      columns.push({ name: alias ?? (op ? `(id ${op} ${n})` : "id"), type: "long", at });
    } else {
      return error(
        `[UNRESOLVED_COLUMN.WITHOUT_SUGGESTION] A column or function parameter with name \`${expr}\` cannot be resolved.`,
        "org.apache.spark.sql.errors.QueryCompilationErrors$.unresolvedAttributeError(QueryCompilationErrors.scala:306)",
      );
    }
  }
  const schema = {
    type: "struct",
    fields: columns.map((c) => ({ name: c.name, type: c.type, nullable: false, metadata: {} })),
  };
  const data = Array.from({ length: rows }, (_, id) => columns.map((c) => c.at(id)));
  return plan(ok(executionCount, { "application/json": { schema, data } }));
}
