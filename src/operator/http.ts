import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

export interface Probes {
  /** The process is alive and its loops are not wedged. */
  healthy(): boolean;
  /** Caches are synced and their watches up (and, with leader election, this replica can serve). */
  ready(): { ok: boolean; detail: string };
}

/** /healthz, /readyz and /metrics on one port. */
export function startHttpServer(
  host: string,
  port: number,
  probes: Probes,
  registry: Registry,
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz" || path === "/livez") {
      const ok = probes.healthy();
      res.writeHead(ok ? 200 : 500, { "content-type": "text/plain" }).end(ok ? "ok\n" : "unhealthy\n");
      return;
    }
    if (path === "/readyz") {
      const r = probes.ready();
      res.writeHead(r.ok ? 200 : 503, { "content-type": "text/plain" }).end(`${r.detail}\n`);
      return;
    }
    if (path === "/metrics") {
      registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const addr = server.address();
      resolve({ server, port: typeof addr === "object" && addr ? addr.port : port });
    });
  });
}
