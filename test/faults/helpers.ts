import { readFileSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { createServer as createTlsServer, type Server as TlsServer, connect as tlsConnect } from "node:tls";
import { type LivySession, phaseOf } from "../../src/api/index.ts";
import { CORE, KubeClient, type KubeObject, loadKubeConfig, resourcePath } from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";
import { LIVYSESSIONS } from "../../src/operator/reconciler.ts";
import {
  getSession,
  isReady,
  kube,
  metricValue,
  type OperatorProcess,
  until,
} from "../integration/harness.ts";
import { testbed } from "../testbed/context.ts";
import { KWOK_POD_PLACEMENT } from "../testbed/controlplane.ts";
import { nodeExec } from "../testbed/node.ts";
import { readState, restartProcess, startProcessByName, stopProcessByName } from "../testbed/testbed.ts";

/**
 * What the fault tests share: reading the world (the stand-in's Livy sessions, the owned objects, the
 * LivySessions), asserting the invariants that must hold after any fault, and injecting faults into the
 * test bed (stopping and starting kube-apiserver, a TCP proxy that stalls).
 */

export interface StandinSession {
  id: number;
  name: string | null;
  state: string;
}

const TERMINAL = new Set(["dead", "killed", "error", "success", "shutting_down"]);

/** The stand-in's Livy sessions whose name starts with `prefix` (the operator names them `<ns>.<name>.<attempt>.<restarts>`). */
export async function standinSessions(
  prefix: string,
  standinUrl = testbed().standinUrl,
): Promise<StandinSession[]> {
  const res = await fetch(`${standinUrl}/sessions?size=100000`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { sessions: StandinSession[] };
  return body.sessions.filter((s) => s.name?.startsWith(prefix));
}

export const liveOnly = (sessions: StandinSession[]) => sessions.filter((s) => !TERMINAL.has(s.state));

export interface Owned {
  deployments: string[];
  services: string[];
  configmaps: string[];
  pods: string[];
}

/** The objects the operator owns in `ns` (by its managed-by label), by kind, as names. */
export async function owned(ns: string): Promise<Owned> {
  const k = await kube();
  const q = { query: { labelSelector: "app.kubernetes.io/managed-by=livy-operator" } };
  const names = (l: { items: KubeObject[] }) => l.items.map((o) => o.metadata?.name ?? "?").sort();
  const [d, s, c, p] = await Promise.all([
    k.get<{ items: KubeObject[] }>(resourcePath(CORE.deployments, ns), q),
    k.get<{ items: KubeObject[] }>(resourcePath(CORE.services, ns), q),
    k.get<{ items: KubeObject[] }>(resourcePath(CORE.configMaps, ns), q),
    k.get<{ items: KubeObject[] }>(resourcePath(CORE.pods, ns), q),
  ]);
  return { deployments: names(d), services: names(s), configmaps: names(c), pods: names(p) };
}

export async function sessions(ns: string): Promise<LivySession[]> {
  const k = await kube();
  return (await k.get<{ items: LivySession[] }>(resourcePath(LIVYSESSIONS, ns))).items;
}

/**
 * Waits until every named LivySession is Ready and the world matches: one live Livy session each (the one
 * in status), one Deployment, Service and ConfigMap each, nothing else. Fails with what differs.
 */
export async function convergedReady(ns: string, names: string[], timeoutMs = 45_000): Promise<void> {
  let last = "";
  await until(
    `${names.length} LivySessions in ${ns} Ready, one Livy session and one server each`,
    async () => {
      last = await readyProblems(ns, names);
      return last === "";
    },
    timeoutMs,
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}\n${last}`);
  });
}

async function readyProblems(ns: string, names: string[]): Promise<string> {
  const problems: string[] = [];
  const [all, objs, livy] = await Promise.all([sessions(ns), owned(ns), standinSessions(`${ns}.`)]);
  for (const n of names) {
    const ls = all.find((s) => s.metadata.name === n);
    if (!ls || !isReady(ls)) {
      problems.push(`${n}: not Ready (${ls?.status?.phase ?? "missing"}: ${ls?.status?.message ?? ""})`);
      continue;
    }
    const mine = livy.filter((s) => s.name?.startsWith(`${ns}.${n}.`));
    if (mine.length !== 1 || mine[0]?.id !== ls.status?.livySessionId)
      problems.push(`${n}: Livy sessions ${JSON.stringify(mine)}, status says ${ls.status?.livySessionId}`);
  }
  const want = names.map((n) => `livy-${n}`).sort();
  for (const kind of ["deployments", "services", "configmaps"] as const) {
    if (JSON.stringify(objs[kind]) !== JSON.stringify(want))
      problems.push(`${kind}: ${objs[kind].join(",")}`);
  }
  return problems.join("\n");
}

/**
 * Waits until the named LivySessions are Idle (or `phase`) with no Livy session and no Deployment left (a
 * parked session keeps its Service and ConfigMap for the wake: decide.ts removeServer).
 */
export async function convergedParked(
  ns: string,
  names: string[],
  phase = "Idle",
  timeoutMs = 45_000,
): Promise<void> {
  let last = "";
  await until(
    `${names.length} LivySessions in ${ns} ${phase}, nothing deployed`,
    async () => {
      const problems: string[] = [];
      const [all, objs, livy] = await Promise.all([sessions(ns), owned(ns), standinSessions(`${ns}.`)]);
      for (const n of names) {
        const ls = all.find((s) => s.metadata.name === n);
        if (ls?.status?.phase !== phase) problems.push(`${n}: ${ls?.status?.phase ?? "missing"}`);
        if (ls?.status?.livySessionId !== undefined) problems.push(`${n}: still has a livySessionId`);
        const mine = livy.filter((s) => s.name?.startsWith(`${ns}.${n}.`));
        if (mine.length) problems.push(`${n}: Livy sessions left ${JSON.stringify(mine)}`);
        if (objs.deployments.includes(`livy-${n}`)) problems.push(`${n}: Deployment left`);
      }
      last = problems.join("\n");
      return last === "";
    },
    timeoutMs,
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}\n${last}`);
  });
}

/** Waits until nothing is left in `ns`: no LivySession (no finalizer stuck), no owned object, no Livy session. */
export async function convergedGone(ns: string, timeoutMs = 60_000): Promise<void> {
  let last = "";
  await until(
    `nothing left in ${ns}`,
    async () => {
      const [all, objs, livy] = await Promise.all([sessions(ns), owned(ns), standinSessions(`${ns}.`)]);
      const problems: string[] = [];
      for (const s of all)
        problems.push(
          `LivySession ${s.metadata.name} left (finalizers ${JSON.stringify(s.metadata.finalizers)}, deleting since ${s.metadata.deletionTimestamp})`,
        );
      for (const [kind, list] of Object.entries(objs))
        if (list.length) problems.push(`${kind} left: ${list.join(",")}`);
      if (livy.length) problems.push(`Livy sessions left: ${JSON.stringify(livy)}`);
      last = problems.join("\n");
      return last === "";
    },
    timeoutMs,
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}\n${last}`);
  });
}

export async function reconcileErrors(op: OperatorProcess): Promise<number> {
  return metricValue(await op.metrics(), "controller_runtime_reconcile_total", { result: "error" });
}

export async function readyz(op: OperatorProcess): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${op.port}/readyz`, { signal: AbortSignal.timeout(2_000) });
  return { status: res.status, body: (await res.text()).trim() };
}

export async function deleteSession(ns: string, name: string): Promise<void> {
  await (await kube()).delete(resourcePath(LIVYSESSIONS, ns, name));
}

export async function patchSession(ns: string, name: string, patch: unknown): Promise<LivySession> {
  return await (await kube()).mergePatch<LivySession>(resourcePath(LIVYSESSIONS, ns, name), patch);
}

export { getSession };

// ------------------------------------------------------------------------------------------------ random

/** A small seeded PRNG (mulberry32), so a failing run can be replayed with FAULTS_SEED. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------------------------ API server

/** A client of the test bed's API server that does not share the harness's connections. */
export async function freshKube(kubeconfig = testbed().kubeconfig): Promise<KubeClient> {
  return await KubeClient.create(loadKubeConfig(kubeconfig));
}

export async function apiserverUp(timeoutMs = 90_000): Promise<void> {
  const k = await freshKube();
  try {
    await until(
      "kube-apiserver answers /version",
      async () => Boolean(await k.get("/version", { timeoutMs: 2_000 })),
      timeoutMs,
    );
  } finally {
    await k.close();
  }
}

/**
 * Waits until the rest of the control plane works again after an API server restart: a Deployment gets a
 * ReplicaSet (kube-controller-manager), its pod a node (kube-scheduler) and Ready (kwok), the real node's
 * kubelet renews its Lease, and its kube-proxy writes the rule of a new Service. Their client-go watches come back by themselves, but only after their own backoff,
 * up to a minute or more.
 */
export async function controlPlaneWorks(timeoutMs = 180_000): Promise<number> {
  const started = Date.now();
  const k = await freshKube();
  const name = `faults-probe-${Date.now().toString(36)}`;
  const path = resourcePath(CORE.deployments, "default", name);
  try {
    await k.create(resourcePath(CORE.deployments, "default"), {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name, namespace: "default" },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: {
            containers: [{ name: "probe", image: "probe" }],
            automountServiceAccountToken: false,
            ...KWOK_POD_PLACEMENT,
          },
        },
      },
    });
    await until(
      "the control plane runs a Deployment again (controller-manager, scheduler, kwok)",
      async () => {
        const d = await k.get<{ status?: { availableReplicas?: number } }>(path, { timeoutMs: 5_000 });
        return (d.status?.availableReplicas ?? 0) >= 1;
      },
      timeoutMs,
    );
    // the real node's kubelet is back too: its node Lease is renewed after the restart
    const node = testbed().node;
    if (node) {
      await until(
        `the kubelet of ${node.name} renewing its Lease again`,
        async () => {
          const lease = await k.get<{ spec?: { renewTime?: string } }>(
            `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${node.name}`,
            { timeoutMs: 5_000 },
          );
          return Date.parse(lease.spec?.renewTime ?? "") > started;
        },
        timeoutMs,
      );
      // and kube-proxy watches again: a Service created now gets its rule in the node's iptables
      const svc = resourcePath(CORE.services, "default", name);
      await k.create(resourcePath(CORE.services, "default"), {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name, namespace: "default" },
        spec: { ports: [{ port: 80 }] },
      });
      try {
        await until(
          `kube-proxy on ${node.name} writing the rule of a new Service`,
          async () => (await nodeExec(node.holderPid, ["iptables-save"])).includes(`default/${name}`),
          timeoutMs,
        );
      } finally {
        await k.delete(svc).catch(() => false);
      }
    }
    return Date.now() - started;
  } finally {
    await k.delete(path).catch(() => false);
    await k.close();
  }
}

/** Stops kube-apiserver at once (SIGTERM then SIGKILL after 1 s: an outage, not a rollout). */
export async function stopApiserver(): Promise<void> {
  await stopProcessByName(testbed().stateDir, "kube-apiserver", { graceMs: 1_000 });
}

/** Starts kube-apiserver again on the command line it was started with (or `args`), and waits until it answers. */
export async function startApiserver(args?: string[]): Promise<void> {
  startProcessByName(testbed().stateDir, "kube-apiserver", args ? { args } : {});
  await apiserverUp();
}

/**
 * kube-controller-manager's and kube-scheduler's leader-election renew deadline by default (10 s): an API
 * server outage longer than this makes both lose their lease in a cluster.
 */
export const LEADER_RENEW_DEADLINE_MS = 10_000;

/**
 * What a cluster does after an API server outage longer than LEADER_RENEW_DEADLINE_MS: kubeadm and kind run
 * kube-controller-manager and kube-scheduler with leader election, so both lose their lease, exit
 * ("leaderelection lost") and are started again by the kubelet, with fresh work queues. The test bed runs
 * one of each without leader election, so they never exit, and every Deployment and ReplicaSet whose sync
 * failed during the outage waits out kube-controller-manager's per-item backoff (5 ms doubling per
 * failure, up to 1000 s): Deployments created just before a 15 s outage stayed "ReplicaSet is progressing"
 * for 100 s to over 5 minutes after the API server was back (fresh-clone CIs; a test bed at load 11), where
 * a cluster takes seconds. This restarts both as the kubelet would.
 */
export async function restartLeaderElected(): Promise<void> {
  const dir = testbed().stateDir;
  for (const name of ["kube-controller-manager", "kube-scheduler"])
    await restartProcess(dir, name, { graceMs: 1_000 });
}

/** The arguments the test bed started kube-apiserver with. */
export function apiserverArgs(): string[] {
  const st = readState(testbed().stateDir);
  const args = st?.processes.find((p) => p.name === "kube-apiserver")?.spec?.args;
  if (!args) throw new Error("state.json has no kube-apiserver command line");
  return args;
}

/** The etcd client URL of the test bed (from etcd's recorded command line). */
export function etcdUrl(): string {
  const st = readState(testbed().stateDir);
  const arg = st?.processes
    .find((p) => p.name === "etcd")
    ?.spec?.args.find((a) => a.startsWith("--listen-client-urls="));
  if (!arg) throw new Error("state.json has no etcd command line");
  return arg.slice("--listen-client-urls=".length);
}

/**
 * Compacts etcd's history up to its current revision, through etcd's own JSON gateway (no etcdctl): watches
 * that resume from an older resourceVersion can then only be answered with 410 Gone.
 */
export async function compactEtcd(): Promise<number> {
  const url = etcdUrl();
  const range = await fetch(`${url}/v3/kv/range`, {
    method: "POST",
    body: JSON.stringify({ key: Buffer.from("/").toString("base64") }),
  });
  const rev = Number(((await range.json()) as { header: { revision: string } }).header.revision);
  const res = await fetch(`${url}/v3/kv/compaction`, {
    method: "POST",
    body: JSON.stringify({ revision: String(rev), physical: true }),
  });
  if (!res.ok) throw new Error(`etcd compaction: HTTP ${res.status} ${await res.text()}`);
  return rev;
}

/** A copy of the test bed's kubeconfig whose server is `server` (e.g. a proxy in front of the API server). */
export function kubeconfigVia(server: string, name: string): string {
  const src = readFileSync(testbed().kubeconfig, "utf8");
  const out = join(testbed().stateDir, `kubeconfig-${name}`);
  writeFileSync(out, src.replace(/server: .*/, `server: ${server}`), { mode: 0o600 });
  return out;
}

// ------------------------------------------------------------------------------------------------ stall proxy

/**
 * A TCP proxy that can stop forwarding without closing anything: the connections stay open and silent,
 * as behind a partitioned network (TCP keeps retransmitting, nothing arrives, nothing fails). TLS passes
 * through untouched (the API server's certificate is for 127.0.0.1, so a proxy on another port of
 * 127.0.0.1 is trusted the same). Bytes are held back, not dropped: after `resume()` they flow on.
 */
export class StallProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private held: Array<[Socket, Buffer]> = [];
  /** Which directions hold their bytes back: up = client to server, down = server to client. */
  private stalled = { up: false, down: false };
  private readonly target: { host: string; port: number; https: boolean };
  port = 0;
  /** Bytes forwarded from clients to the server (held ones when they are delivered). */
  bytesUp = 0;

  constructor(target: string) {
    const u = new URL(target);
    this.target = { host: u.hostname, port: Number(u.port), https: u.protocol === "https:" };
    this.server = createServer((client) => this.accept(client));
  }

  get url(): string {
    return `${this.target.https ? "https" : "http"}://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const addr = this.server.address();
    this.port = typeof addr === "object" && addr ? addr.port : 0;
  }

  private accept(client: Socket): void {
    const upstream = connect(this.target.port, this.target.host);
    this.upstreams.add(upstream);
    this.sockets.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
    const forward = (to: Socket, dir: "up" | "down") => (d: Buffer) => {
      if (this.stalled[dir]) this.held.push([to, d]);
      else this.write(to, d);
    };
    client.on("data", forward(upstream, "up"));
    upstream.on("data", forward(client, "down"));
  }

  private readonly upstreams = new WeakSet<Socket>();

  private write(to: Socket, d: Buffer): void {
    if (to.destroyed) return;
    if (this.upstreams.has(to)) this.bytesUp += d.length;
    to.write(d);
  }

  /**
   * From now on bytes are held back, in both directions or one (`up`: what clients send never arrives, as in
   * a one-sided partition; their connections stay open). What a connection held is dropped when its client
   * closes it, as a reset connection's unsent data is.
   */
  stall(direction: "both" | "up" | "down" = "both"): void {
    this.stalled = { up: direction !== "down", down: direction !== "up" };
  }

  /** Delivers what was held back and forwards again. */
  resume(): void {
    this.stalled = { up: false, down: false };
    for (const [to, d] of this.held.splice(0)) this.write(to, d);
  }

  /** Closes every connection through the proxy: clients connect again (and resolve the name again). */
  resetConnections(): void {
    for (const sock of this.sockets) sock.destroy();
  }

  /** Connections open through the proxy now. */
  get connections(): number {
    return this.sockets.size / 2;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// ------------------------------------------------------------------------------------------------ phases

/** Every phase each LivySession of `ns` went through, from a watch of our own. */
export async function phaseRecorder(ns: string) {
  const k = await KubeClient.create(loadKubeConfig(testbed().kubeconfig));
  const seen = new Map<string, string[]>();
  const note = (o: LivySession) => {
    const list = seen.get(o.metadata.name) ?? [];
    const p = phaseOf(o);
    if (list.at(-1) !== p) list.push(p);
    seen.set(o.metadata.name, list);
  };
  const inf = new Informer<LivySession>(k, { path: resourcePath(LIVYSESSIONS, ns) });
  inf.addHandlers({ onAdd: note, onUpdate: (_, o) => note(o) });
  inf.start();
  await inf.waitForSync();
  return {
    seen,
    async stop() {
      await inf.stop();
      await k.close();
    },
  };
}

// ------------------------------------------------------------------------------------------------ split proxy

/**
 * A TLS-terminating proxy in front of the API server that delivers every byte of its watch streams to its
 * client as a TLS record of its own, each after the last was written: the client's HTTP parser sees the
 * body in one-byte chunks, so every watch event (and every multi-byte character in it) arrives split.
 * Other answers (lists, reads, writes) pass whole: splitting them too made a start take minutes on a
 * loaded machine. It serves the API server's own certificate (for 127.0.0.1) and speaks to it as the test
 * bed's admin.
 */
export class SplitProxy {
  private readonly server: TlsServer;
  private readonly sockets = new Set<Socket>();
  private readonly target: { host: string; port: number };
  port = 0;
  /** Bytes delivered one at a time. */
  bytesSplit = 0;

  constructor(target: string) {
    const u = new URL(target);
    this.target = { host: u.hostname, port: Number(u.port) };
    const pki = join(testbed().stateDir, "pki");
    this.server = createTlsServer(
      { cert: readFileSync(join(pki, "serving.crt")), key: readFileSync(join(pki, "serving.key")) },
      (client) => this.accept(client, pki),
    );
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const addr = this.server.address();
    this.port = typeof addr === "object" && addr ? addr.port : 0;
  }

  private accept(client: Socket, pki: string): void {
    const upstream = tlsConnect({
      host: this.target.host,
      port: this.target.port,
      ca: readFileSync(join(pki, "ca.crt")),
      cert: readFileSync(join(pki, "admin.crt")),
      key: readFileSync(join(pki, "admin.key")),
    });
    client.setNoDelay(true);
    this.sockets.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
    // one request at a time per connection (the client does not pipeline): what follows a request line
    // answers it
    let split = false;
    client.on("data", (d: Buffer) => {
      const line = /^(GET|PUT|POST|PATCH|DELETE|HEAD|OPTIONS) (\S+)/.exec(
        d.subarray(0, 2048).toString("latin1"),
      );
      if (line) split = /[?&]watch=(true|1)\b/.test(line[2] ?? "");
      upstream.write(d);
    });
    // a watch's bytes one per write, each written once the last has gone out: one TLS record per byte
    let queue = Promise.resolve();
    upstream.on("data", (d: Buffer) => {
      const splitThis = split;
      queue = queue.then(async () => {
        if (!splitThis) {
          if (!client.destroyed) client.write(d);
          return;
        }
        for (const byte of d) {
          if (client.destroyed) return;
          await new Promise<void>((resolve) => client.write(Buffer.of(byte), () => resolve()));
          this.bytesSplit++;
        }
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
