#!/usr/bin/env node
import { pino } from "pino";
import { KubeClient, loadKubeConfig } from "../kube/client.ts";
import { ensureSessionKey, SessionKey } from "../kube/session-key.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { checkCrdInstalled, createController, servesPools } from "./controller.ts";
import { startHttpServer } from "./http.ts";
import { LeaderElector } from "./leader.ts";
import { createMetrics } from "./metrics.ts";

/**
 * The operator process: `npm run operator` against the current kubeconfig (like kubebuilder's `make run`),
 * or in a cluster with its service account. Exit codes: 0 after a graceful shutdown, 1 on a runtime
 * failure (lost leadership, API unreachable at start), 2 on bad configuration.
 */
async function main(): Promise<number> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError || (err instanceof Error && "code" in err)) {
      const code = (err as { code?: string }).code;
      if (code === "commander.helpDisplayed" || code === "commander.version") return 0;
      process.stderr.write(`livy-operator: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const log = pino({ level: config.logLevel, base: { controller: "livysession" } });
  let kube: KubeClient;
  try {
    kube = await KubeClient.create(loadKubeConfig(config.kubeconfig));
    await checkCrdInstalled(kube);
  } catch (err) {
    log.fatal(err instanceof Error ? err.message : String(err));
    return 2;
  }
  const metrics = createMetrics();
  // The key shared with the gateway: the per-session credentials derive from it (src/api/credential.ts).
  let sessionKey: SessionKey | null = null;
  if (config.sessionKeySecret) {
    const [namespace = "", name = ""] = config.sessionKeySecret.split("/");
    try {
      await ensureSessionKey(kube, { namespace, name });
    } catch (err) {
      log.fatal(`cannot create the session key Secret ${config.sessionKeySecret}: ${String(err)}`);
      return 2;
    }
    sessionKey = new SessionKey(kube, { namespace, name }, log);
    await sessionKey.start();
    if (!sessionKey.current) {
      log.fatal(
        `the session key Secret ${config.sessionKeySecret} holds no key (data.key, 16 bytes or more)`,
      );
      return 2;
    }
  }
  const key = sessionKey;
  const pools = await servesPools(kube);
  if (!pools) log.warn("LivySessionPools are not served (their CRD is not installed): no warm pool");
  const controller = createController({
    kube,
    config,
    metrics,
    log,
    pools,
    ...(key ? { sessionKey: () => key.current } : {}),
  });
  if (key) {
    // a new key: every session's credential Secret is rewritten (its server reads it; nothing restarts)
    key.onChange = () => {
      for (const s of controller.caches.sessions.list())
        controller.queue.add(`${s.metadata.namespace}/${s.metadata.name}`);
    };
  }
  const elector = config.leaderElect
    ? new LeaderElector(kube, log, {
        namespace: config.leaderElectionNamespace,
        name: config.leaderElectionId,
        identity: config.identity,
      })
    : null;
  const http = await startHttpServer(
    config.httpHost,
    config.httpPort,
    {
      healthy: () => true,
      ready: () => {
        if (!controller.synced) return { ok: false, detail: "caches not synced" };
        // a cache that cannot be refreshed (API server unreachable, watch broken or stalled) is not ready
        const down = controller.unhealthyWatches();
        if (down.length) return { ok: false, detail: `watches down: ${down.join(", ")}` };
        return { ok: true, detail: elector && !elector.isLeader ? "ok (standby)" : "ok" };
      },
    },
    metrics.registry,
  );
  log.info({ port: http.port, server: kube.server, identity: config.identity }, "livy-operator starting");

  let exitCode = 0;
  let shuttingDown: Promise<void> | null = null;
  const shutdown = (code: number, why: string, abort = false) => {
    if (shuttingDown) return shuttingDown;
    exitCode = code;
    log.info({ why }, "shutting down");
    shuttingDown = (async () => {
      const hardStop = setTimeout(() => process.exit(exitCode || 1), 15_000);
      hardStop.unref();
      // SIGTERM lets passes in flight finish; a lost lease cancels them (their requests carry its signal)
      await controller.stop({ abort });
      await elector?.release();
      await new Promise((r) => http.server.close(r));
      sessionKey?.stop();
      await kube.close();
      clearTimeout(hardStop);
    })();
    return shuttingDown;
  };
  const done = new Promise<void>((resolve) => {
    process.once("SIGTERM", () => void shutdown(0, "SIGTERM").then(resolve));
    process.once("SIGINT", () => void shutdown(0, "SIGINT").then(resolve));
  });

  await controller.startInformers();
  if (elector) {
    metrics.leader.set(0);
    // informers start before leadership so a standby takes over with warm caches
    await elector.run(() => {
      metrics.leader.set(0);
      void shutdown(1, "leader election lost", true).then(() => process.exit(1));
    });
    metrics.leader.set(1);
  }
  if (!shuttingDown) controller.startWorkers(elector?.signal);
  await done;
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `livy-operator: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
