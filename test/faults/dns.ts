/**
 * Loaded into the operator with `NODE_OPTIONS=--import <this file>`: names under `.faults.test` resolve to
 * 127.0.0.1, and when the file FAULTS_DNS_CONTROL holds a number n > 0, the next n lookups of such names
 * fail as a resolver that times out does (EAI_AGAIN), counting the file down. The fault injected is a DNS
 * failure between the operator and a Livy server; the operator's own code and its HTTP client are the
 * real ones (they resolve through node:dns, patched here).
 */
import dns from "node:dns";
import { readFileSync, writeFileSync } from "node:fs";

const control = process.env.FAULTS_DNS_CONTROL;
// biome-ignore lint/suspicious/noExplicitAny: dns.lookup's overloads
const original = dns.lookup as any;

function failNext(): boolean {
  if (!control) return false;
  let n = 0;
  try {
    n = Number(readFileSync(control, "utf8").trim()) || 0;
  } catch {
    return false;
  }
  if (n <= 0) return false;
  writeFileSync(control, String(n - 1));
  return true;
}

// biome-ignore lint/suspicious/noExplicitAny: dns.lookup's overloads
(dns as any).lookup = function lookup(hostname: string, options: unknown, callback?: unknown) {
  const cb = (typeof options === "function" ? options : callback) as (...args: unknown[]) => void;
  const opts = typeof options === "function" ? {} : options;
  if (!hostname.endsWith(".faults.test")) return original.call(dns, hostname, opts, cb);
  if (failNext()) {
    const err = Object.assign(new Error(`getaddrinfo EAI_AGAIN ${hostname}`), {
      code: "EAI_AGAIN",
      errno: -3001,
      syscall: "getaddrinfo",
      hostname,
    });
    process.nextTick(() => cb(err));
    return;
  }
  return original.call(dns, "127.0.0.1", opts, cb);
};
