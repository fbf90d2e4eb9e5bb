/**
 * The stand-in's "Python": a tiny deterministic interpreter, just enough for the contract tests and the
 * client's tests to get the outputs real pyspark gives (values, Python's error names and messages,
 * Livy's %json/%table magics, sleeps that take real time).
 *
 * Understood, one statement per line or `;`: `import ...`, `name = expr`, `print(expr)`,
 * `time.sleep(S)` / `sleep S`, `raise Name("msg")`, `spark.range(N).count()`, expressions over ints,
 * floats, strings and names with + - * / // % ** and parentheses; `%json <JSON>` and `%table <JSON rows>`.
 * A line it does not understand is echoed back as text.
 */

export type Value = number | string | null | { float: number };

export type Output =
  | { status: "ok"; execution_count: number; data: Record<string, unknown> }
  | { status: "error"; execution_count: number; ename: string; evalue: string; traceback: string[] };

export interface Plan {
  /** Time the statement takes, from sleeps. */
  sleepMs: number;
  /** It runs a Spark job: progress grows while it runs. */
  sparkJob: boolean;
  output: Output;
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

export function run(code: string, vars: Map<string, Value>, executionCount: number): Plan {
  let sleepMs = 0;
  let sparkJob = false;
  const trimmed = code.trim();
  const magic = /^%(json|table)\s+([\s\S]*)$/.exec(trimmed);
  if (magic) return { sleepMs, sparkJob, output: runMagic(magic[1] ?? "", magic[2] ?? "", executionCount) };
  let stdout = "";
  let last: Value | undefined;
  try {
    for (const line of splitStatements(code)) {
      last = undefined;
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
        last = Number(count[1]);
        continue;
      }
      const print = /^print\((.*)\)$/.exec(line);
      if (print) {
        stdout += `${str(evaluate(print[1] ?? "", vars))}\n`;
        continue;
      }
      const assign = /^([A-Za-z_]\w*)\s*=(?!=)\s*(.+)$/.exec(line);
      if (assign) {
        vars.set(assign[1] ?? "", evaluate(assign[2] ?? "", vars));
        continue;
      }
      const tokens = tokenize(line);
      if (!tokens) {
        // Not in the stand-in's language: echo it, so tests can still tell outputs apart.
        stdout += `${line}\n`;
        continue;
      }
      last = new Parser(tokens, vars).parseAll();
    }
  } catch (err) {
    if (err instanceof PyError)
      return { sleepMs, sparkJob, output: pythonError(executionCount, err.ename, err.evalue) };
    throw err;
  }
  // The last expression's repr follows what was printed, as in Livy's fake_shell; trailing space dropped.
  const text = `${stdout}${last === undefined || last === null ? "" : repr(last)}`.replace(/\s+$/, "");
  return {
    sleepMs,
    sparkJob,
    output: { status: "ok", execution_count: executionCount, data: { "text/plain": text } },
  };
}

function runMagic(name: string, arg: string, executionCount: number): Output {
  let value: unknown;
  try {
    value = JSON.parse(arg);
  } catch {
    return pythonError(executionCount, "SyntaxError", "invalid syntax");
  }
  if (name === "json") {
    return { status: "ok", execution_count: executionCount, data: { "application/json": value } };
  }
  if (
    !Array.isArray(value) ||
    !value.every((r) => typeof r === "object" && r !== null && !Array.isArray(r))
  ) {
    return pythonError(executionCount, "ValueError", "table rows must be dicts");
  }
  const rows = value as Record<string, unknown>[];
  const names: string[] = [];
  for (const row of rows) for (const k of Object.keys(row)) if (!names.includes(k)) names.push(k);
  const headers = names.map((n) => ({ name: n, type: tableType(rows.find((r) => r[n] != null)?.[n]) }));
  const data = rows.map((r) => names.map((n) => r[n] ?? null));
  return {
    status: "ok",
    execution_count: executionCount,
    data: { "application/vnd.livy.table.v1+json": { headers, data } },
  };
}

function tableType(v: unknown): string {
  if (typeof v === "boolean") return "BOOLEAN_TYPE";
  if (typeof v === "number") return Number.isInteger(v) ? "INT_TYPE" : "DOUBLE_TYPE";
  if (typeof v === "string") return "STRING_TYPE";
  return "NULL_TYPE";
}

function splitStatements(code: string): string[] {
  const out: string[] = [];
  for (const rawLine of code.split("\n")) {
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

// --- expressions ---------------------------------------------------------------------------------

type Token =
  | { t: "num"; v: Value }
  | { t: "str"; v: string }
  | { t: "name"; v: string }
  | { t: "op"; v: string };

function tokenize(src: string): Token[] | null {
  const tokens: Token[] = [];
  const re = /\s*(?:(\d+\.\d*|\.\d+|\d+)|(['"])((?:(?!\2).)*)\2|([A-Za-z_]\w*)|(\*\*|\/\/|[-+*/%()]))/y;
  let pos = 0;
  while (pos < src.length) {
    if (/^\s*$/.test(src.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) return null;
    pos = re.lastIndex;
    if (m[1] !== undefined)
      tokens.push({ t: "num", v: m[1].includes(".") ? { float: Number(m[1]) } : Number(m[1]) });
    else if (m[2] !== undefined) tokens.push({ t: "str", v: m[3] ?? "" });
    else if (m[4] !== undefined) tokens.push({ t: "name", v: m[4] });
    else if (m[5] !== undefined) tokens.push({ t: "op", v: m[5] });
  }
  return tokens.length > 0 ? tokens : null;
}

function evaluate(src: string, vars: Map<string, Value>): Value {
  const tokens = tokenize(src);
  if (!tokens) throw new PyError("SyntaxError", "invalid syntax");
  return new Parser(tokens, vars).parseAll();
}

class Parser {
  readonly #tokens: Token[];
  readonly #vars: Map<string, Value>;
  #i = 0;

  constructor(tokens: Token[], vars: Map<string, Value>) {
    this.#tokens = tokens;
    this.#vars = vars;
  }

  parseAll(): Value {
    const v = this.#sum();
    if (this.#i < this.#tokens.length) throw new PyError("SyntaxError", "invalid syntax");
    return v;
  }

  #peekOp(...ops: string[]): string | undefined {
    const tok = this.#tokens[this.#i];
    return tok?.t === "op" && ops.includes(tok.v) ? tok.v : undefined;
  }

  #sum(): Value {
    let v = this.#term();
    for (let op = this.#peekOp("+", "-"); op; op = this.#peekOp("+", "-")) {
      this.#i++;
      v = binary(op, v, this.#term());
    }
    return v;
  }

  #term(): Value {
    let v = this.#unary();
    for (let op = this.#peekOp("*", "/", "//", "%"); op; op = this.#peekOp("*", "/", "//", "%")) {
      this.#i++;
      v = binary(op, v, this.#unary());
    }
    return v;
  }

  #unary(): Value {
    const op = this.#peekOp("-", "+");
    if (op) {
      this.#i++;
      const v = this.#unary();
      return op === "-" ? binary("*", -1, v) : v;
    }
    return this.#power();
  }

  #power(): Value {
    const base = this.#atom();
    if (this.#peekOp("**")) {
      this.#i++;
      return binary("**", base, this.#unary());
    }
    return base;
  }

  #atom(): Value {
    const tok = this.#tokens[this.#i++];
    if (!tok) throw new PyError("SyntaxError", "invalid syntax");
    if (tok.t === "num" || tok.t === "str") return tok.v;
    if (tok.t === "name") {
      if (tok.v === "None") return null;
      if (!this.#vars.has(tok.v)) throw new PyError("NameError", `name '${tok.v}' is not defined`);
      return this.#vars.get(tok.v) ?? null;
    }
    if (tok.v === "(") {
      const v = this.#sum();
      if (!this.#peekOp(")")) throw new PyError("SyntaxError", "invalid syntax");
      this.#i++;
      return v;
    }
    throw new PyError("SyntaxError", "invalid syntax");
  }
}

function typeName(v: Value): string {
  if (v === null) return "NoneType";
  if (typeof v === "string") return "str";
  if (typeof v === "number") return "int";
  return "float";
}

function num(v: Value): number {
  return typeof v === "object" && v !== null ? v.float : (v as number);
}

function binary(op: string, a: Value, b: Value): Value {
  if (typeof a === "string" || typeof b === "string" || a === null || b === null) {
    if (op === "+" && typeof a === "string" && typeof b === "string") return a + b;
    if (op === "*" && typeof a === "string" && typeof b === "number") return a.repeat(Math.max(0, b));
    throw new PyError(
      "TypeError",
      `unsupported operand type(s) for ${op}: '${typeName(a)}' and '${typeName(b)}'`,
    );
  }
  const isFloat = typeof a === "object" || typeof b === "object";
  const x = num(a);
  const y = num(b);
  const wrap = (r: number, float = isFloat): Value => (float ? { float: r } : r);
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
      if (y === 0)
        throw new PyError(
          "ZeroDivisionError",
          isFloat ? "float floor division by zero" : "integer division or modulo by zero",
        );
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

function str(v: Value): string {
  if (typeof v === "string") return v;
  return repr(v);
}

/** Python's repr of the value. */
export function repr(v: Value): string {
  if (v === null) return "None";
  if (typeof v === "string") return `'${v.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
  if (typeof v === "number") return String(v);
  if (!Number.isFinite(v.float)) return Number.isNaN(v.float) ? "nan" : v.float > 0 ? "inf" : "-inf";
  return Number.isInteger(v.float) ? `${v.float}.0` : String(v.float);
}
