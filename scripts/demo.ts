#!/usr/bin/env node
/**
 * `npm run demo` (or `make demo`): the product as users see it, on the test bed.
 *
 * With the real node and both images (the default where Docker and a Livy release are available):
 *   1. brings the test bed up, the operator and Livy server images imported into its real node
 *   2. `helm upgrade --install` of the chart: the operator and the gateway in pods, as docs/install.md says
 *   3. `kubectl apply -f examples/pyspark-minimal.yaml`, followed to Ready: real Livy on Spark in a pod
 *   4. statements with livyctl from the host (through the API server's service proxy), as the README shows
 *   5. idle teardown (idleTimeout shortened to 20s), then `livyctl wake` and a statement on the new session
 *   6. `kubectl delete`, and nothing left
 * The test bed and the chart stay up afterwards: `eval "$(npm run --silent testbed -- env)"`, then
 * `kubectl apply -f examples/...`; `npm run testbed -- down` stops everything.
 *
 * Without them (no Docker for the images, no Livy release, or --standin), the fallback runs the operator as a
 * process on the host with the Livy servers' pods on kwok and Livy on the host (real Livy when available,
 * else the protocol stand-in), and says so.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { GROUP, type LivySession, VERSION } from "../src/api/index.ts";
import { KubeClient, loadKubeConfig, resourcePath } from "../src/kube/client.ts";
import { LivyClient } from "../src/livy/client.ts";
import { LIVYSESSIONS } from "../src/operator/reconciler.ts";
import { testbedCluster } from "../test/e2e/cluster.ts";
import { Product, RELEASE_NS } from "../test/e2e/product.ts";
import { KWOK_NAMESPACE_ANNOTATIONS } from "../test/testbed/controlplane.ts";
import { projectImages } from "../test/testbed/images.ts";
import { REPO_ROOT } from "../test/testbed/paths.ts";
import { freePort, untilCrdEstablished } from "../test/testbed/process.ts";
import {
  defaultStateDir,
  envLines,
  skipImages,
  skipLivy,
  type TestbedState,
  up,
} from "../test/testbed/testbed.ts";

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

/** Why the demo cannot run on the real node with the images, or null. */
function realNodeUnavailable(tb: TestbedState): string | null {
  if (useStandin) return "--standin was given";
  if (skipImages()) return "LIVY_TESTBED_SKIP_IMAGES=1: no images are built";
  if (skipLivy() || !tb.livyUrl)
    return "no Apache Livy release on this machine: the Livy server image cannot be built";
  if (!tb.node) return "the test bed has no real node";
  return null;
}

async function main(): Promise<void> {
  say(
    "bringing the test bed up: control plane, a real node (kubelet, containerd, kube-proxy, CoreDNS), kwok, Livy",
  );
  const images = useStandin || skipImages() ? Promise.resolve([]) : imageTars();
  const tb = await up(defaultStateDir(), { nodeImages: images });
  const why = realNodeUnavailable(tb);
  if (why) {
    say(
      `NOT the real-node demo (${why}): the fallback runs the operator on the host and the Livy pods on kwok`,
    );
    await hostDemo(tb);
  } else {
    await realNodeDemo(tb);
  }
  process.stdout.write(
    `\nThe test bed is still up. Use it with:\n  eval "$(npm run --silent testbed -- env)"\n${envLines(tb)
      .split("\n")
      .map((l) => `    ${l}`)
      .join("\n")}\nand stop it with: npm run testbed -- down\n`,
  );
}

async function imageTars(): Promise<string[]> {
  const built = await projectImages({ livy: !skipLivy() });
  return [built.operator.tar, ...(built.livy ? [built.livy.tar] : [])];
}

/** The product as a user installs and uses it: the chart, the example, livyctl; real Livy on Spark in pods. */
async function realNodeDemo(tb: TestbedState): Promise<void> {
  const cluster = await testbedCluster(tb);
  const p = new Product(cluster, (m) => say(`  ${m}`));
  const ns = "default";
  const name = "pyspark-minimal";
  const example = join(REPO_ROOT, "examples", `${name}.yaml`);
  const show = async (...args: string[]) => {
    say(`$ kubectl ${args.join(" ")}`);
    process.stdout.write(await p.kubectl(args));
  };
  const statement = async (code: string) => {
    // from the host, as the README prints it: livyctl reaches the session through the API server's service
    // proxy with the kubeconfig (docs/client.md#reaching-a-session-from-outside-the-cluster)
    say(`$ livyctl run --livysession ${ns}/${name} '${code}'`);
    const r = await p.livyctl(["run", "--livysession", `${ns}/${name}`, code], { timeoutMs: 600_000 });
    process.stdout.write(r.stdout);
    if (r.code !== 0) throw new Error(`livyctl exited with ${r.code}: ${r.stderr}`);
  };
  try {
    say(`real node ${tb.node?.name} with ${cluster.images.operator} and ${cluster.images.livy}`);
    say(
      "$ helm upgrade --install livy-operator charts/livy-operator -n livy-operator --create-namespace --wait",
    );
    await p.sh(
      "helm",
      [
        "upgrade",
        "--install",
        "livy-operator",
        join(REPO_ROOT, "charts", "livy-operator"),
        "-n",
        RELEASE_NS,
        "--create-namespace",
        "--wait",
        "--timeout",
        "10m",
      ],
      { timeoutMs: 900_000 },
    );
    await show("get", "pods", "-n", RELEASE_NS, "-o", "wide");
    if (await p.get(ns, name)) {
      say("removing the LivySession an earlier demo left behind");
      await p.kubectl(["delete", "-f", example, "--wait", "--timeout=180s"]);
    }
    say(
      `$ kubectl apply -f examples/${name}.yaml   (real Livy 0.9 on Spark 3.5 in a pod: a JVM and a SparkContext start)`,
    );
    await p.kubectl(["apply", "-f", example]);
    await p.waitReady(ns, name, 900_000);
    await show("get", "lvs");
    await show("get", "pods", "-l", "app.kubernetes.io/managed-by=livy-operator", "-o", "wide");
    await statement("spark.range(1000).count()");

    say("no more statements: idleTimeout shortened to 20s to see the idle teardown");
    await p.kubectl([
      "patch",
      "livysession",
      name,
      "--type",
      "merge",
      "-p",
      '{"spec":{"idleTimeout":"20s"}}',
    ]);
    await p.waitFor(ns, name, "Idle", (ls: LivySession) => ls.status?.phase === "Idle", 180_000);
    const left = await p.ownedLeft(ns);
    say(
      `idle: the Livy server is being removed (${left.length ? left.join(", ") : "nothing left"}); the LivySession stays`,
    );
    await show("get", "lvs");

    say(`$ livyctl wake ${ns}/${name}`);
    const woke = await p.livyctl(["wake", `${ns}/${name}`, "--timeout", "0"]);
    if (woke.code !== 0) throw new Error(`livyctl wake: ${woke.stderr}`);
    await p.kubectl(["patch", "livysession", name, "--type", "merge", "-p", '{"spec":{"idleTimeout":null}}']);
    await p.waitReady(ns, name, 900_000);
    await statement("sc.parallelize(range(10)).map(lambda x: x * x).sum()");

    say(`$ kubectl delete -f examples/${name}.yaml`);
    await p.kubectl(["delete", "-f", example, "--wait", "--timeout=180s"]);
    const start = Date.now();
    while ((await p.ownedLeft(ns)).length && Date.now() - start < 180_000)
      await new Promise((r) => setTimeout(r, 500));
    const after = await p.ownedLeft(ns);
    say(
      after.length
        ? `still there: ${after.join(", ")}`
        : "deleted: no pod, ReplicaSet, Deployment, Service or ConfigMap left",
    );
    say("the chart stays installed: kubectl apply -f examples/<file>.yaml to try the others");
  } finally {
    await p.close();
  }
}

/**
 * The fallback: the operator as a process on the host, the Livy server's pods on kwok (no containers), Livy
 * itself on the host (real Livy when the test bed has it, else the stand-in).
 */
async function hostDemo(tb: TestbedState): Promise<void> {
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
  await untilCrdEstablished(async (args) => kubectl(...args), "livysessions.livy.dev");
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
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`[demo] failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
