/**
 * Loaded into a process on the host with `NODE_OPTIONS=--import <this file>` (or imported by a test): names
 * under `.svc` and `.svc.cluster.local` resolve through the test bed's cluster DNS (CoreDNS, at the DNS
 * Service's ClusterIP, which answers from the host), everything else as before. So an operator running on
 * the host reaches the Livy servers on the real node by the URLs it gives them in a cluster
 * (`http://livy-<name>.<namespace>.svc:8998`), with its own code and HTTP client (which resolve through
 * node:dns, patched here). LIVY_TESTBED_DNS_IP is the DNS Service's ClusterIP (`npm run testbed -- env`).
 */
import dns from "node:dns";

const server = process.env.LIVY_TESTBED_DNS_IP;
const resolver = new dns.Resolver({ timeout: 2_000, tries: 2 });
if (server) resolver.setServers([server]);

// biome-ignore lint/suspicious/noExplicitAny: dns.lookup's overloads
const original = dns.lookup as any;

function clusterName(hostname: string): string | null {
  const h = hostname.replace(/\.$/, "");
  if (h.endsWith(".svc")) return `${h}.cluster.local`;
  if (h.endsWith(".svc.cluster.local")) return h;
  return null;
}

// biome-ignore lint/suspicious/noExplicitAny: dns.lookup's overloads
(dns as any).lookup = function lookup(hostname: string, options: unknown, callback?: unknown) {
  const cb = (typeof options === "function" ? options : callback) as (...args: unknown[]) => void;
  const opts = (typeof options === "function" ? {} : (options ?? {})) as { all?: boolean } | number;
  const name = server ? clusterName(hostname) : null;
  if (!name) return original.call(dns, hostname, opts, cb);
  resolver.resolve4(name, (err, addresses) => {
    if (err || addresses.length === 0) {
      const e = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
        code: "ENOTFOUND",
        errno: -3008,
        syscall: "getaddrinfo",
        hostname,
        cause: err,
      });
      cb(e);
      return;
    }
    const all = typeof opts === "object" && opts.all;
    if (all)
      cb(
        null,
        addresses.map((address) => ({ address, family: 4 })),
      );
    else cb(null, addresses[0], 4);
  });
};
