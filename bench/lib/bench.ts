/** What one benchmark module returns to bench/run.ts. */
import type { Goal, Table } from "./report.ts";

export interface BenchBody {
  params: Record<string, unknown>;
  results: Record<string, unknown>;
  goals: Goal[];
  tables: Table[];
  notes: string[];
  /** For the machine description: the test bed's python (Spark, pylivy versions) and Livy URL. */
  env?: { python?: string | null; livyUrl?: string | null };
}

export type BenchFn = (args: Args) => Promise<BenchBody>;

/** `--key value` / `--flag` arguments after the benchmark's name. */
export class Args {
  readonly raw: string[];
  readonly #values = new Map<string, string>();
  constructor(raw: string[]) {
    this.raw = raw;
    for (let i = 0; i < raw.length; i++) {
      const a = raw[i] ?? "";
      if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
      const eq = a.indexOf("=");
      if (eq > 0) this.#values.set(a.slice(2, eq), a.slice(eq + 1));
      else if (i + 1 < raw.length && !(raw[i + 1] ?? "").startsWith("--"))
        this.#values.set(a.slice(2), raw[++i] ?? "");
      else this.#values.set(a.slice(2), "true");
    }
  }
  num(key: string, dflt: number): number {
    const v = this.#values.get(key);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`--${key} must be a number, got ${v}`);
    return n;
  }
  str(key: string, dflt: string): string {
    return this.#values.get(key) ?? dflt;
  }
  bool(key: string): boolean {
    const v = this.#values.get(key);
    return v !== undefined && v !== "false" && v !== "0";
  }
}

export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
