/**
 * Durations in the Go syntax that users know from Kubernetes ("15m", "1h30m", "90s", "0"), restricted to a
 * subset on which this parser, Go's time.ParseDuration and CEL's duration() agree exactly: whole-number
 * components of at most 6 digits, fractions of at most 3 digits, units h, m, s and ms, no sign. With at most
 * 3 fraction digits and units of at least 1 ms, Go's float arithmetic on fractions is exact, so the API
 * server's CEL range checks and the zod refinements compare the same nanosecond counts.
 */
export const DURATION_PATTERN = "^(0|([0-9]{1,6}(\\.[0-9]{1,3})?(h|ms|m|s))+)$";
export const DURATION_MAX_LENGTH = 32;

const DURATION_RE = new RegExp(DURATION_PATTERN);
const COMPONENT_RE = /([0-9]+)(?:\.([0-9]+))?(h|ms|m|s)/g;

const NANOS_PER_UNIT: Record<string, bigint> = {
  h: 3_600_000_000_000n,
  m: 60_000_000_000n,
  s: 1_000_000_000n,
  ms: 1_000_000n,
};

/** Nanoseconds as a bigint (exact, like Go's int64), or null when `s` is not a duration of the subset. */
export function durationNanos(s: string): bigint | null {
  if (s.length > DURATION_MAX_LENGTH || !DURATION_RE.test(s)) return null;
  if (s === "0") return 0n;
  let total = 0n;
  for (const m of s.matchAll(COMPONENT_RE)) {
    const unit = NANOS_PER_UNIT[m[3] ?? ""];
    if (unit === undefined) return null;
    const whole = BigInt(m[1] ?? "0");
    const frac = m[2] ?? "";
    const scale = 10n ** BigInt(frac.length);
    total += whole * unit + (frac === "" ? 0n : (BigInt(frac) * unit) / scale);
  }
  return total;
}

/** Milliseconds of a duration such as "1h30m"; throws on anything else. "0" is 0 (meaning "never" where documented). */
export function parseDuration(s: string): number {
  const ns = durationNanos(s);
  if (ns === null) {
    throw new Error(`invalid duration ${JSON.stringify(s)}: expected e.g. "90s", "15m", "1h30m" or "0"`);
  }
  return Number(ns) / 1e6;
}

/** The Go-style spelling of a millisecond count: 5_400_000 -> "1h30m", 90_000 -> "1m30s", 0 -> "0s". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`cannot format duration ${ms}`);
  if (ms === 0) return "0s";
  if (ms < 1000) return `${trimFraction(ms)}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const sec = (ms % 60_000) / 1000;
  let out = "";
  if (h > 0) out += `${h}h`;
  if (h > 0 || m > 0) out += `${m}m`;
  if (sec > 0 || out === "") out += `${trimFraction(sec)}s`;
  // Go prints "1h0m0s"; dropping the zero tail keeps the output short and still parseable.
  return out.replace(/(\d)h0m$/, "$1h");
}

function trimFraction(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(3).replace(/0+$/, "");
}
