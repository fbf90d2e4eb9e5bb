import { type ChildProcess, execFile, spawn } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { parse, stringify } from "yaml";
import { GROUP, getCondition, isReady, type LivySession, PLURAL, VERSION } from "../../src/api/index.ts";
import { KubeApiError, KubeClient, loadKubeConfig, resourcePath } from "../../src/kube/client.ts";
import { LIVYSESSIONS } from "../../src/operator/reconciler.ts";
import { testbed } from "../testbed/context.ts";
import { KWOK_NAMESPACE_ANNOTATIONS } from "../testbed/controlplane.ts";
import { REPO_ROOT } from "../testbed/paths.ts";
import { freePort, until, untilCrdEstablished } from "../testbed/process.ts";

const run = promisify(execFile);

export function kubectlEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    KUBECONFIG: testbed().kubeconfig,
    PATH: `${testbed().binDirs.join(":")}:${process.env.PATH}`,
  };
}

export async function kubectl(args: string[], input?: string): Promise<string> {
  const p = run("kubectl", args, { env: kubectlEnv(), maxBuffer: 64 << 20 });
  if (input !== undefined) p.child.stdin?.end(input);
  return (await p).stdout;
}

let client: KubeClient | null = null;
export async function kube(): Promise<KubeClient> {
  client ??= await KubeClient.create(loadKubeConfig(testbed().kubeconfig));
  return client;
}

export { until };

/** Applies the generated CRD and waits until the API server serves it. */
export async function installCrd(): Promise<void> {
  await kubectl(["apply", "--server-side", "--force-conflicts", "-f", join(REPO_ROOT, "crds")]);
  await untilCrdEstablished(kubectl, `${PLURAL}.${GROUP}`);
}

/**
 * A fresh namespace whose pods all go to the kwok node (fake pods that turn Ready at once), by the API
 * server's PodNodeSelector and PodTolerationRestriction plugins: the operator's tests run against kwok at
 * speed. `{ realNode: true }` leaves the annotations off: its pods run on the real node.
 */
export async function createNamespace(prefix: string, opts: { realNode?: boolean } = {}): Promise<string> {
  const ns = `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
  const annotations = opts.realNode ? {} : { ...KWOK_NAMESPACE_ANNOTATIONS };
  await (await kube()).create("/api/v1/namespaces", { metadata: { name: ns, annotations } });
  return ns;
}

export async function getSession(ns: string, name: string): Promise<LivySession | null> {
  return await (await kube()).getOrNull<LivySession>(resourcePath(LIVYSESSIONS, ns, name));
}

export async function applySession(
  ns: string,
  name: string,
  spec: Record<string, unknown>,
  annotations?: Record<string, string>,
): Promise<LivySession> {
  return await (await kube()).apply<LivySession>(
    resourcePath(LIVYSESSIONS, ns, name),
    {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: "LivySession",
      metadata: { name, namespace: ns, ...(annotations ? { annotations } : {}) },
      spec,
    },
    "integration-test",
  );
}

export function condition(
  ls: LivySession | null,
  type: string,
): { status: string; reason: string; message: string } | undefined {
  return getCondition(ls?.status?.conditions, type);
}

export async function waitFor(
  ns: string,
  name: string,
  pred: (ls: LivySession) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<LivySession> {
  return await until(
    `${ns}/${name}: ${what}`,
    async () => {
      const ls = await getSession(ns, name);
      return ls && pred(ls) ? ls : null;
    },
    timeoutMs,
  ).catch(async (err: unknown) => {
    const ls = await getSession(ns, name);
    throw new Error(
      `${err instanceof Error ? err.message : String(err)}\nlast status: ${JSON.stringify(ls?.status, null, 2)}`,
    );
  });
}

export { isReady };
export const phaseIs = (p: string) => (ls: LivySession) => ls.status?.phase === p;

export async function exists(path: string): Promise<boolean> {
  try {
    await (await kube()).get(path);
    return true;
  } catch (err) {
    if (err instanceof KubeApiError && err.isNotFound) return false;
    throw err;
  }
}

export interface OperatorProcess {
  proc: ChildProcess;
  port: number;
  log: string;
  /** Graceful stop (SIGTERM). */
  stop(): Promise<number | null>;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
  metrics(): Promise<string>;
  logs(): string;
}

/**
 * Starts the real operator process against the test bed, its Livy servers reached through the stand-in
 * (kwok runs no containers, so the server URL template points at the stand-in).
 */
export async function startOperator(
  opts: { args?: string[]; env?: Record<string, string>; name?: string } = {},
): Promise<OperatorProcess> {
  const port = await freePort();
  const dir = join(testbed().stateDir, "logs");
  mkdirSync(dir, { recursive: true });
  const log = join(dir, `operator-${opts.name ?? "main"}-${Date.now()}.log`);
  const fd = openSync(log, "a");
  const proc = spawn(
    process.execPath,
    [
      join(REPO_ROOT, "src", "operator", "main.ts"),
      "--kubeconfig",
      testbed().kubeconfig,
      "--server-url-template",
      testbed().standinUrl,
      "--http-port",
      String(port),
      "--http-host",
      "127.0.0.1",
      "--session-poll-interval-ms",
      "500",
      "--log-level",
      "debug",
      ...(opts.args ?? []),
    ],
    { stdio: ["ignore", fd, fd], env: { ...process.env, ...opts.env } },
  );
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  const op: OperatorProcess = {
    proc,
    port,
    log,
    async stop() {
      proc.kill("SIGTERM");
      return await exited;
    },
    async kill() {
      proc.kill("SIGKILL");
      await exited;
    },
    async metrics() {
      return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    },
    logs() {
      return readFileSync(log, "utf8");
    },
  };
  try {
    await until(
      "operator /readyz",
      async () => {
        if (proc.exitCode !== null)
          throw new Error(`operator exited with ${proc.exitCode}:\n${op.logs().slice(-3000)}`);
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
        return res?.status === 200;
      },
      // loading its modules alone took 6-30 s at load average 20-28 on 2 cores, over 60 s with a CPU hog
      180_000,
    );
  } catch (err) {
    // never leave an operator behind: a second one acting on the same objects fails the tests after
    if (proc.exitCode === null) await op.kill();
    throw err;
  }
  return op;
}

/** Reads a counter/gauge sample from Prometheus text: sum over series matching the label filter. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+([^\s]+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const lbl = m[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => lbl.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/**
 * A kubeconfig that authenticates as the ServiceAccount with a short-lived token (TokenRequest), so the
 * operator runs with exactly the RBAC the chart grants that ServiceAccount, nothing of the admin's. Written
 * under the test bed's state directory (removed with it).
 */
export async function serviceAccountKubeconfig(namespace: string, sa: string): Promise<string> {
  const token = (await kubectl(["create", "token", sa, "-n", namespace, "--duration=1h"])).trim();
  const admin = parse(readFileSync(testbed().kubeconfig, "utf8")) as {
    "current-context": string;
    contexts: Array<{ name: string; context: { cluster: string } }>;
    clusters: Array<{ name: string; cluster: Record<string, unknown> }>;
  };
  const ctx = admin.contexts.find((c) => c.name === admin["current-context"]);
  const cluster = admin.clusters.find((c) => c.name === ctx?.context.cluster);
  if (!cluster) throw new Error("the test bed kubeconfig has no current cluster");
  const base = join(testbed().stateDir, "kubeconfigs");
  mkdirSync(base, { recursive: true });
  const file = join(mkdtempSync(join(base, `${sa}-`)), "kubeconfig");
  writeFileSync(
    file,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "testbed", cluster: cluster.cluster }],
      users: [{ name: sa, user: { token } }],
      contexts: [{ name: "sa", context: { cluster: "testbed", user: sa, namespace } }],
      "current-context": "sa",
    }),
    { mode: 0o600 },
  );
  return file;
}
