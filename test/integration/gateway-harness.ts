import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Agent, fetch as undiciFetch } from "undici";
import { testbed } from "../testbed/context.ts";
import { REPO_ROOT } from "../testbed/paths.ts";
import { freePort } from "../testbed/process.ts";
import { kube, until } from "./harness.ts";

export interface GatewayProcess {
  proc: ChildProcess;
  url: string;
  httpPort: number;
  log: string;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
  metrics(): Promise<string>;
  logs(): string;
}

/** Starts the real gateway process against the test bed (admin kubeconfig unless `kubeconfig` is given). */
export async function startGateway(
  opts: { args?: string[]; env?: Record<string, string>; name?: string; kubeconfig?: string } = {},
): Promise<GatewayProcess> {
  const port = await freePort();
  const httpPort = await freePort();
  const dir = join(testbed().stateDir, "logs");
  mkdirSync(dir, { recursive: true });
  const log = join(dir, `gateway-${opts.name ?? "main"}-${Date.now()}.log`);
  const fd = openSync(log, "a");
  const proc = spawn(
    process.execPath,
    [
      join(REPO_ROOT, "src", "gateway", "main.ts"),
      "--kubeconfig",
      opts.kubeconfig ?? testbed().kubeconfig,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--http-host",
      "127.0.0.1",
      "--http-port",
      String(httpPort),
      "--shutdown-delay-ms",
      "0",
      "--log-level",
      "debug",
      ...(opts.args ?? []),
    ],
    { stdio: ["ignore", fd, fd], env: { ...process.env, ...opts.env } },
  );
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  const gw: GatewayProcess = {
    proc,
    url: `http://127.0.0.1:${port}`,
    httpPort,
    log,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      return await exited;
    },
    async kill() {
      if (proc.exitCode !== null) return;
      proc.kill("SIGKILL");
      await exited;
    },
    async metrics() {
      return await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    },
    logs() {
      return readFileSync(log, "utf8");
    },
  };
  await until(
    "gateway /readyz",
    async () => {
      if (proc.exitCode !== null)
        throw new Error(`gateway exited with ${proc.exitCode}:\n${gw.logs().slice(-3000)}`);
      const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => null);
      return res?.status === 200;
    },
    // starting Node with type stripping took 40 s and more at load average 20
    90_000,
  ).catch(async (err: unknown) => {
    await gw.kill();
    throw err;
  });
  return gw;
}

/** A ServiceAccount and a token for it (TokenRequest), with an optional Role on livysessions/proxy. */
export async function serviceAccountToken(ns: string, name: string, proxyVerbs?: string[]): Promise<string> {
  const k = await kube();
  await k.create(`/api/v1/namespaces/${ns}/serviceaccounts`, { metadata: { name } });
  if (proxyVerbs?.length) {
    await k.create(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
      metadata: { name },
      rules: [{ apiGroups: ["livy.dev"], resources: ["livysessions/proxy"], verbs: proxyVerbs }],
    });
    await k.create(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
      metadata: { name },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name, namespace: ns }],
    });
  }
  const tr = await k.create<{ status: { token: string } }>(
    `/api/v1/namespaces/${ns}/serviceaccounts/${name}/token`,
    {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: { expirationSeconds: 3600 },
    },
  );
  return tr.status.token;
}

const patient = new Agent({ headersTimeout: 0, bodyTimeout: 0 });

export interface GwResponse {
  status: number;
  headers: { get(name: string): string | null };
  json: unknown;
  text: string;
}

/** A request to the gateway under a LivySession's prefix. */
export async function gw(
  base: string,
  ns: string,
  name: string,
  method: string,
  path: string,
  opts: {
    token?: string;
    basic?: string;
    body?: unknown;
    headers?: Record<string, string>;
    signal?: AbortSignal;
  } = {},
): Promise<GwResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.basic) headers.authorization = `Basic ${Buffer.from(`me:${opts.basic}`).toString("base64")}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const res = await undiciFetch(`${base}/namespaces/${ns}/livysessions/${name}${path}`, {
    method,
    headers,
    // a held request waits for a cold start: longer than fetch's default 300 s headers timeout at times
    dispatcher: patient,
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

/** Posts a statement through the gateway and polls it until it is done; the statement's final object. */
export async function runThroughGateway(
  base: string,
  ns: string,
  name: string,
  token: string,
  code: string,
  opts: { headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{
  post: GwResponse;
  statement: { id: number; state: string; output: Record<string, unknown> | null };
}> {
  const post = await gw(base, ns, name, "POST", "/sessions/0/statements", {
    token,
    body: { code },
    ...(opts.headers ? { headers: opts.headers } : {}),
  });
  if (post.status !== 201) throw new Error(`POST statement: ${post.status} ${post.text}`);
  const id = (post.json as { id: number }).id;
  const statement = await until(
    `statement ${id} done`,
    async () => {
      const r = await gw(base, ns, name, "GET", `/sessions/0/statements/${id}`, { token });
      const s = r.json as { id: number; state: string; output: Record<string, unknown> | null };
      return s.state === "available" || s.state === "cancelled" ? s : null;
    },
    opts.timeoutMs ?? 60_000,
  );
  return { post, statement };
}

export function textOf(statement: { output: Record<string, unknown> | null }): string | undefined {
  return (statement.output?.data as Record<string, string> | undefined)?.["text/plain"];
}
