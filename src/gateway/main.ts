#!/usr/bin/env node
import { readFileSync, statSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { pino } from "pino";
import { type LivySession, parseLivySession } from "../api/index.ts";
import { KubeClient, loadKubeConfig, resourcePath } from "../kube/client.ts";
import { Informer } from "../kube/informer.ts";
import { SessionKey } from "../kube/session-key.ts";
import { LIVYSESSION_RESOURCE } from "../livy/kube.ts";
import { startHttpServer } from "../operator/http.ts";
import {
  apiServiceOwner,
  ensureCaBundle,
  type FrontProxyConfig,
  loadFrontProxy,
  servingCertificate,
} from "./aggregation.ts";
import { Auth } from "./auth.ts";
import { type GatewayConfig, GatewayConfigError, loadGatewayConfig } from "./config.ts";
import { Holds } from "./holds.ts";
import { createGatewayMetrics } from "./metrics.ts";
import { Gateway, type SessionSource } from "./server.ts";
import { Upstream } from "./upstream.ts";
import { upstreamAuthorization } from "./upstream-auth.ts";

/**
 * The gateway process (`livy-gateway`, same image as the operator): Livy's REST API per LivySession on
 * --port, probes and metrics on --http-port. Exit codes: 0 after a graceful shutdown, 1 on a runtime
 * failure, 2 on bad configuration or no usable kubeconfig.
 */
async function main(): Promise<number> {
  let config: GatewayConfig;
  try {
    config = loadGatewayConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof GatewayConfigError || (err instanceof Error && "code" in err)) {
      const code = (err as { code?: string }).code;
      if (code === "commander.helpDisplayed" || code === "commander.version") return 0;
      process.stderr.write(`livy-gateway: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  // credentials travel in headers, which are never logged; the paths below are a guard for the future
  const log = pino({
    level: config.logLevel,
    base: { component: "livy-gateway" },
    redact: {
      paths: ["authorization", "*.authorization", "*.headers.authorization", "token", "*.token"],
      censor: "[redacted]",
    },
  });
  let kube: KubeClient;
  try {
    kube = await KubeClient.create(loadKubeConfig(config.kubeconfig));
  } catch (err) {
    log.fatal(err instanceof Error ? err.message : String(err));
    return 2;
  }
  const metrics = createGatewayMetrics();
  const holds = new Holds({ maxPerSession: config.maxHeldPerSession, maxTotal: config.maxHeldTotal });

  // LivySessions, watched (all namespaces, or the configured ones); every change wakes held requests
  const namespaces: Array<string | undefined> = config.namespaces.length ? config.namespaces : [undefined];
  const informers = namespaces.map((ns) => {
    const inf = new Informer<LivySession>(kube, {
      path: resourcePath(LIVYSESSION_RESOURCE, ns),
      ...(ns ? { namespace: ns } : {}),
      stallTimeoutMs: config.watchStallTimeoutMs,
      onRestart: (reason) => log.warn({ namespace: ns, reason }, "LivySession list/watch restarted"),
      onError: (err) => log.warn({ err: String(err) }, "LivySession list/watch failed"),
    });
    const notify = (o: LivySession) => holds.notify(`${o.metadata?.namespace}/${o.metadata?.name}`);
    inf.addHandlers({ onAdd: notify, onUpdate: (_, o) => notify(o), onDelete: notify });
    return inf;
  });
  const parsed = new WeakMap<object, LivySession | null>();
  const sessions: SessionSource = {
    get(key) {
      const ns = key.split("/")[0];
      const inf = informers.length === 1 ? informers[0] : informers.find((i) => i.namespace === ns);
      const raw = inf?.get(key);
      if (!raw) return null;
      let p = parsed.get(raw);
      if (p === undefined) {
        const r = parseLivySession(raw);
        p = r.success ? r.data : null;
        if (!r.success)
          log.warn({ key, problems: r.message }, "a LivySession does not parse; treated as absent");
        parsed.set(raw, p);
      }
      return p;
    },
  };

  const auth = new Auth(kube, {
    authnTtlMs: config.authnCacheTtlMs,
    authzTtlMs: config.authzCacheTtlMs,
    negativeTtlMs: config.negativeCacheTtlMs,
    maxEntries: config.cacheMaxEntries,
    audiences: config.tokenAudiences,
  });
  metrics.setSources({
    sessions: () => informers.reduce((n, i) => n + i.size, 0),
    cache: () => ({ authn: auth.caches.authn, authz: auth.caches.authz }),
  });
  const upstream = new Upstream({ timeoutMs: config.upstreamTimeoutMs });
  let sessionKey: SessionKey | null = null;
  if (config.sessionKeySecret) {
    const [namespace = "", name = ""] = config.sessionKeySecret.split("/");
    sessionKey = new SessionKey(kube, { namespace, name }, log);
    await sessionKey.start();
  }
  const gateway = new Gateway({
    config,
    kube,
    sessions,
    holds,
    auth,
    upstream,
    metrics,
    log,
    upstreamHeaders: (obj) =>
      upstreamAuthorization(obj, { key: sessionKey, kube, readAuthSecrets: config.readAuthSecrets }),
    refreshUpstreamCredentials: async () => (await sessionKey?.refresh()) ?? false,
  });

  let shuttingDown = false;
  const probes = await startHttpServer(
    config.httpHost,
    config.httpPort,
    {
      healthy: () => true,
      ready: () => {
        if (shuttingDown) return { ok: false, detail: "shutting down" };
        if (!informers.every((i) => i.hasSynced))
          return { ok: false, detail: "LivySession cache not synced" };
        const down = informers.filter((i) => !i.healthy).length;
        // a cache that cannot follow the API server still serves: the status it holds is the best known
        return { ok: true, detail: down ? "ok (LivySession watch reconnecting)" : "ok" };
      },
    },
    metrics.registry,
  );

  for (const i of informers) i.start();
  await Promise.all(informers.map((i) => i.waitForSync()));

  const api =
    config.tlsCertFile && config.tlsKeyFile
      ? tlsServer(config, gateway, log)
      : createHttpServer(gateway.handle);
  // keep-alive connections outlive Node's 5 s default between a client's polls (sparkmagic polls each second)
  api.keepAliveTimeout = 65_000;
  api.headersTimeout = 66_000;
  api.requestTimeout = 0; // held requests wait for a cold start: the hold deadline bounds them
  await new Promise<void>((resolve, reject) => {
    api.once("error", reject);
    api.listen(config.port, config.host, () => resolve());
  });
  // The API server's aggregation layer (aggregation.ts): its own HTTPS port, front-proxy certificates only.
  let aggregated: ReturnType<typeof createHttpsServer> | null = null;
  let refreshTimer: NodeJS.Timeout | null = null;
  if (config.apiserverPort > 0 && config.apiserverTlsSecret) {
    const [namespace = "", name = ""] = config.apiserverTlsSecret.split("/");
    let frontProxy: FrontProxyConfig = await loadFrontProxy(kube);
    // owned by the APIService, so that helm uninstall leaves no Secret of the gateway's behind
    const owner = async () =>
      config.apiService ? apiServiceOwner(kube, config.apiService).catch(() => null) : null;
    let serving = await servingCertificate(
      kube,
      { namespace, name },
      config.apiserverDnsNames,
      await owner(),
    );
    const context = () => ({ cert: serving.cert, key: serving.key, ca: frontProxy.ca });
    aggregated = createHttpsServer(
      { ...context(), requestCert: true, rejectUnauthorized: false },
      gateway.handleAggregated(() => frontProxy),
    );
    aggregated.keepAliveTimeout = 65_000;
    aggregated.requestTimeout = 0;
    const syncCaBundle = async () => {
      if (!config.apiService) return;
      try {
        if (await ensureCaBundle(kube, config.apiService, serving.cert))
          log.info({ apiService: config.apiService }, "APIService caBundle set to the serving certificate");
      } catch (err) {
        log.warn({ err: String(err), apiService: config.apiService }, "cannot set the APIService's caBundle");
      }
    };
    await syncCaBundle();
    // the front proxy's CA and the shared certificate may change (CA rotation, a renewed certificate)
    refreshTimer = setInterval(async () => {
      try {
        frontProxy = await loadFrontProxy(kube);
        serving = await servingCertificate(
          kube,
          { namespace, name },
          config.apiserverDnsNames,
          await owner(),
        );
        aggregated?.setSecureContext(context());
        await syncCaBundle();
      } catch (err) {
        log.warn({ err: String(err) }, "cannot refresh the aggregation layer's certificates");
      }
    }, 300_000);
    refreshTimer.unref();
    await new Promise<void>((resolve, reject) => {
      aggregated?.once("error", reject);
      aggregated?.listen(config.apiserverPort, config.apiserverHost, () => resolve());
    });
  }
  const addr = api.address();
  log.info(
    {
      port: typeof addr === "object" && addr ? addr.port : config.port,
      apiserverPort: config.apiserverPort || undefined,
      httpPort: probes.port,
      tls: Boolean(config.tlsCertFile),
      server: kube.server,
      namespaces: config.namespaces.length ? config.namespaces : "all",
    },
    "livy-gateway serving",
  );

  const shutdown = async (why: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ why, inflight: gateway.inflight, held: holds.count }, "shutting down: unready, draining");
    // endpoints take a moment to drop this replica: go on serving meanwhile, but close connections after
    // each answer so that clients reconnect to another replica
    gateway.drain();
    await new Promise((r) => setTimeout(r, config.shutdownDelayMs));
    api.close();
    api.closeIdleConnections();
    if (refreshTimer) clearInterval(refreshTimer);
    aggregated?.close();
    aggregated?.closeIdleConnections();
    const timeout = new Promise((r) => setTimeout(r, config.shutdownTimeoutMs));
    await Promise.race([gateway.idle(), timeout]);
    if (gateway.inflight > 0) {
      // held requests were never sent to Livy: they get 503 and their clients retry elsewhere
      log.warn(
        { inflight: gateway.inflight, held: holds.count },
        "shutdown timeout: releasing held requests",
      );
      gateway.releaseHolds();
      await Promise.race([gateway.idle(), new Promise((r) => setTimeout(r, 2_000))]);
    }
    api.closeAllConnections();
    aggregated?.closeAllConnections();
    sessionKey?.stop();
    await Promise.all(informers.map((i) => i.stop()));
    await upstream.close();
    await new Promise((r) => probes.server.close(r));
    await kube.close();
    log.info("stopped");
  };
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => void shutdown("SIGTERM").then(resolve));
    process.once("SIGINT", () => void shutdown("SIGINT").then(resolve));
  });
  return 0;
}

/** HTTPS with the certificate reloaded when its files change (cert-manager renews them in place). */
function tlsServer(config: GatewayConfig, gateway: Gateway, log: pino.Logger): HttpsServer {
  const cert = config.tlsCertFile ?? "";
  const key = config.tlsKeyFile ?? "";
  const read = () => ({ cert: readFileSync(cert), key: readFileSync(key) });
  const stamp = () => `${statSync(cert).mtimeMs}/${statSync(key).mtimeMs}`;
  const server = createHttpsServer(read(), gateway.handle);
  let last = stamp();
  const timer = setInterval(() => {
    try {
      const now = stamp();
      if (now === last) return;
      server.setSecureContext(read());
      last = now;
      log.info("TLS certificate reloaded");
    } catch (err) {
      log.warn({ err: String(err) }, "TLS certificate reload failed; keeping the current one");
    }
  }, 30_000);
  timer.unref();
  server.once("close", () => clearInterval(timer));
  return server;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `livy-gateway: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
