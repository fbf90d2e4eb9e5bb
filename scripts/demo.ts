#!/usr/bin/env node
/**
 * `npm run demo` (or `make demo`): the operator on the test bed's real control plane, end to end.
 *   1. brings the test bed up (built from the registries on first use, cached afterwards)
 *   2. installs the CRD and starts the operator (as `npm run operator` would)
 *   3. applies examples/pyspark-minimal.yaml and follows it to Ready
 *   4. runs statements through the TypeScript client, several at once
 *   5. lets it idle out (idleTimeout shortened to 15s), then wakes it with the demand annotation
 *   6. deletes it and checks that nothing is left
 * Livy is the real Livy on Spark when the test bed has it, the protocol stand-in otherwise (--standin forces
 * it: quicker, no Spark). The test bed stays up afterwards: `eval "$(npm run --silent testbed -- env)"`,
 * and `npm run testbed -- down` stops it.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { GROUP, type LivySession, VERSION } from "../src/api/index.ts";
import { KubeClient, loadKubeConfig, resourcePath } from "../src/kube/client.ts";
import { LivyClient } from "../src/livy/client.ts";
import { LIVYSESSIONS } from "../src/operator/reconciler.ts";
import { KWOK_NAMESPACE_ANNOTATIONS } from "../test/testbed/controlplane.ts";
import { REPO_ROOT } from "../test/testbed/paths.ts";
import { freePort } from "../test/testbed/process.ts";
import { envLines, up } from "../test/testbed/testbed.ts";

const useStandin = process.argv.includes("--standin");
const t0 = Date.now();
const say = (msg: string) =>
  process.stdout.write(`[demo +${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);

async function until<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function main(): Promise<void> {
  say("bringing the test bed up (etcd, kube-apiserver, controller-manager, scheduler, kwok, Livy, stand-in)");
  const tb = await up();
  const livyUrl = !useStandin && tb.livyUrl ? tb.livyUrl : tb.standinUrl;
  say(
    `test bed up; Livy for the demo: ${livyUrl === tb.standinUrl ? "the protocol stand-in" : "real Livy 0.9 on Spark 3.5"} at ${livyUrl}`,
  );
  const env = {
    ...process.env,
    KUBECONFIG: tb.kubeconfig,
    PATH: `${tb.binDirs.join(":")}:${process.env.PATH}`,
  };
  const kubectl = (...args: string[]) => execFileSync("kubectl", args, { env, encoding: "utf8" });
  const ownedLeft = () =>
    kubectl(
      "get",
      "deployments,services,configmaps",
      "-n",
      "demo",
      "-l",
      "app.kubernetes.io/managed-by=livy-operator",
      "-o",
      "name",
    ).trim();
  kubectl("apply", "--server-side", "--force-conflicts", "-f", join(REPO_ROOT, "crds"));
  kubectl("wait", "--for=condition=Established", "crd/livysessions.livy.dev");
  execFileSync("kubectl", ["apply", "-f", "-"], {
    env,
    // the demo's Livy server pods go to the kwok node (Livy itself runs on the host)
    input: JSON.stringify({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: "demo", annotations: KWOK_NAMESPACE_ANNOTATIONS },
    }),
  });
  say("CRD installed; starting the operator");

  const port = await freePort();
  const operator: ChildProcess = spawn(
    process.execPath,
    [
      join(REPO_ROOT, "src/operator/main.ts"),
      "--server-url-template",
      livyUrl,
      "--http-port",
      String(port),
      "--http-host",
      "127.0.0.1",
      "--session-poll-interval-ms",
      "1000",
      "--livy-request-timeout-ms",
      "30000",
    ],
    { env, stdio: ["ignore", "ignore", "inherit"] },
  );
  const kube = await KubeClient.create(loadKubeConfig(tb.kubeconfig));
  const path = resourcePath(LIVYSESSIONS, "demo", "pyspark-minimal");
  const get = () => kube.getOrNull<LivySession>(path);
  let lastPhase = "";
  const follow = async (want: (ls: LivySession) => boolean, what: string, timeoutMs: number) =>
    await until(
      what,
      async () => {
        const ls = await get();
        const phase = ls?.status?.phase ?? "Pending";
        const ready = ls?.status?.conditions?.find((c) => c.type === "Ready");
        if (phase !== lastPhase) {
          say(`  phase ${phase.padEnd(10)} ${ready ? `${ready.reason}: ${ready.message}` : ""}`.trimEnd());
          lastPhase = phase;
        }
        return ls && want(ls) ? ls : null;
      },
      timeoutMs,
    );
  try {
    await until(
      "the operator's /readyz",
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.ok,
      30_000,
    );
    say("operator ready; applying examples/pyspark-minimal.yaml (idleTimeout 15s for the demo)");
    const manifest = parse(readFileSync(join(REPO_ROOT, "examples/pyspark-minimal.yaml"), "utf8")) as {
      spec: Record<string, unknown>;
    };
    const apply = (extra: Record<string, unknown> = {}) =>
      kube.apply(
        path,
        {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: "LivySession",
          metadata: { name: "pyspark-minimal", namespace: "demo", ...extra },
          spec: { ...manifest.spec, idleTimeout: "15s" },
        },
        "livy-demo",
      );
    if (await get()) {
      say("removing the LivySession an earlier demo left behind");
      await kube.delete(path);
      await until("the earlier LivySession gone", async () => (await get()) === null, 120_000);
    }
    await apply();
    const ready = await follow((ls) => ls.status?.phase === "Ready", "Ready", 600_000);
    say(`Ready: session URL ${ready.status?.sessionURL}`);
    process.stdout.write(kubectl("get", "livysessions", "-n", "demo", "-o", "wide"));

    const client = new LivyClient({ baseUrl: ready.status?.serverURL ?? livyUrl });
    const session = client.session(ready.status?.livySessionId ?? -1, { mode: "failFast" });
    const codes = ["1 + 1", "spark.range(1000).count()", "2 ** 10", "spark.range(100).count()"];
    const started = performance.now();
    const handles = await Promise.all(codes.map((c) => session.submit(c)));
    say(
      `submitted ${handles.length} statements at once in ${(performance.now() - started).toFixed(1)} ms (ids ${handles.map((h) => h.id).join(", ")})`,
    );
    for (const [i, h] of handles.entries()) {
      const r = await h.result;
      say(`  ${codes[i]?.padEnd(48)} => ${r.text}   (${(performance.now() - started).toFixed(0)} ms)`);
    }
    await client.close();

    say("no more statements: waiting for the idle teardown (idleTimeout 15s)");
    await follow((ls) => ls.status?.phase === "Idle", "Idle", 120_000);
    const left = ownedLeft();
    say(`idle: Livy server removed (owned objects left: ${left || "none"}); the LivySession stays`);

    say("waking it with the livy.dev/demanded-at annotation (what livyctl wake does)");
    await apply({ annotations: { "livy.dev/demanded-at": new Date().toISOString() } });
    const woke = await follow((ls) => ls.status?.phase === "Ready", "Ready again", 600_000);
    say(`Ready again with Livy session ${woke.status?.livySessionId}`);

    say("deleting it: the finalizer deletes the Livy session, garbage collection the server");
    await kube.delete(path);
    await until("deleted", async () => (await get()) === null, 120_000);
    await until("owned objects collected", async () => ownedLeft() === "", 60_000);
    say("deleted; nothing left behind");
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const pick = (name: string) =>
      metrics
        .split("\n")
        .filter((l) => l.startsWith(name))
        .join("\n");
    process.stdout.write(
      `\nfrom the operator's /metrics:\n${pick("controller_runtime_reconcile_total")}\n${pick("livy_operator_demand_to_ready_seconds_sum")}\n${pick("livy_operator_idle_teardowns_total")}\n`,
    );
  } finally {
    operator.kill("SIGTERM");
    await kube.close();
  }
  process.stdout.write(
    `\nThe test bed is still up. Use it with:\n  eval "$(npm run --silent testbed -- env)"\n${envLines(tb)
      .split("\n")
      .map((l) => `    ${l}`)
      .join("\n")}\nand stop it with: npm run testbed -- down\n`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`[demo] failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
