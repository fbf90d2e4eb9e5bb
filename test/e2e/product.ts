/**
 * The product as a user drives it, on any cluster: `helm install` of the chart, `kubectl apply` of an
 * example, `livyctl`, the LivySession's status, the Livy pod. The end-to-end suite (suite.ts), `make demo`
 * (scripts/demo.ts) and the real-node benchmark (bench/realnode.ts) share these steps; a cluster provider
 * (cluster.ts) only provisions the cluster and loads the images.
 *
 * User actions go through the user's tools (kubectl, helm, livyctl) with the cluster's kubeconfig; what the
 * tests observe (status, pods, timings) is read through the Kubernetes API directly, so that a tool's own
 * start-up time is not counted against the product.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import {
  CRD_NAME,
  CREDENTIAL_MOUNT_DIR,
  CREDENTIAL_SECRET_KEY,
  GROUP,
  type LivySession,
  POOL_CRD_NAME,
  phaseOf,
  readyCondition,
  VERSION,
} from "../../src/api/index.ts";
import {
  CORE,
  KubeApiError,
  KubeClient,
  type KubeObject,
  loadKubeConfig,
  resourcePath,
} from "../../src/kube/client.ts";
import { REPO_ROOT } from "../testbed/paths.ts";

const run = promisify(execFile);

export const CHART = join(REPO_ROOT, "charts", "livy-operator");
export const RELEASE = "livy-operator";
export const RELEASE_NS = "livy-operator";
/** The label every object the operator makes carries. */
export const MANAGED = "app.kubernetes.io/managed-by=livy-operator";
const LIVYSESSIONS = { group: GROUP, version: VERSION, plural: "livysessions", namespaced: true } as const;

/** A cluster the product runs on, provisioned and with both images loaded (cluster.ts). */
export interface Cluster {
  /** What it is, for titles and logs: "the test bed's real node", "kind cluster livy-e2e-x". */
  description: string;
  kubeconfig: string;
  /** Directories with kubectl and helm, put first on PATH. */
  binDirs: string[];
  /** The images as the nodes have them: the chart's default names, so the chart needs no image values. */
  images: { operator: string; livy: string };
  /** Removes what provisioning made (a kind cluster); the test bed's is the run's and stays. */
  dispose(): Promise<void>;
}

export interface Pod {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
  };
  spec: { nodeName?: string; containers: Array<{ name: string; image: string }> };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: Array<{ type: string; status: string; lastTransitionTime?: string }>;
    containerStatuses?: Array<{
      name: string;
      ready?: boolean;
      restartCount?: number;
      state?: { running?: { startedAt?: string }; terminated?: { exitCode?: number; reason?: string } };
    }>;
  };
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A Livy session as Livy lists it on its server. */
export interface ServerSession {
  id: number;
  name: string | null;
  state: string;
}

export class Product {
  private kubeClient: KubeClient | null = null;
  readonly cluster: Cluster;
  private readonly log: (msg: string) => void;
  constructor(cluster: Cluster, log: (msg: string) => void = () => undefined) {
    this.cluster = cluster;
    this.log = log;
  }

  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      ...process.env,
      KUBECONFIG: this.cluster.kubeconfig,
      PATH: [...this.cluster.binDirs, process.env.PATH ?? ""].join(":"),
      ...extra,
    };
  }

  /** Runs a command; resolves with its exit code and output, never throws for a non-zero exit. */
  async exec(
    cmd: string,
    args: string[],
    opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
  ): Promise<CommandResult> {
    const p = run(cmd, args, {
      env: opts.env ?? this.env(),
      maxBuffer: 64 << 20,
      timeout: opts.timeoutMs ?? 300_000,
      killSignal: "SIGKILL",
    });
    if (opts.input !== undefined) p.child.stdin?.end(opts.input);
    try {
      const { stdout, stderr } = await p;
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as {
        code?: number | string;
        stdout?: string;
        stderr?: string;
        killed?: boolean;
        message: string;
      };
      const code = typeof e.code === "number" ? e.code : -1;
      const stderr = e.killed
        ? `${e.stderr ?? ""}\n(killed after ${opts.timeoutMs ?? 300_000} ms)`
        : (e.stderr ?? e.message);
      return { code, stdout: e.stdout ?? "", stderr };
    }
  }

  /** Runs a command that must succeed; throws with its stderr otherwise. */
  async sh(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.exec(cmd, args, opts);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} (exit ${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  }

  kubectl(args: string[], input?: string): Promise<string> {
    return this.sh("kubectl", args, input === undefined ? {} : { input });
  }

  /**
   * livyctl as a user runs it: the `livyctl` on the cluster's PATH (the test bed's shim of this checkout's
   * source), else this checkout's source run by this Node (the same program).
   */
  livyctl(args: string[], opts: { timeoutMs?: number } = {}): Promise<CommandResult> {
    const shim = this.cluster.binDirs.map((d) => join(d, "livyctl")).find((f) => existsSync(f));
    return shim
      ? this.exec(shim, args, opts)
      : this.exec(process.execPath, [join(REPO_ROOT, "src", "cli", "main.ts"), ...args], opts);
  }

  async kube(): Promise<KubeClient> {
    this.kubeClient ??= await KubeClient.create(loadKubeConfig(this.cluster.kubeconfig));
    return this.kubeClient;
  }

  async close(): Promise<void> {
    await this.kubeClient?.close();
    this.kubeClient = null;
  }

  // ------------------------------------------------------------------------------------------ install

  /**
   * `helm install` of the chart as docs/install.md says, with two operator replicas (leader election); the
   * images are the chart's defaults, loaded on the nodes by the provider.
   */
  async helmInstall(opts: { replicas?: number; timeout?: string } = {}): Promise<void> {
    await this.handOverCrd();
    try {
      await this.sh(
        "helm",
        [
          "install",
          RELEASE,
          CHART,
          "--namespace",
          RELEASE_NS,
          "--create-namespace",
          "--set",
          `replicaCount=${opts.replicas ?? 2}`,
          "--wait",
          "--timeout",
          opts.timeout ?? "10m",
        ],
        { timeoutMs: 900_000 },
      );
    } catch (err) {
      // the release's pods are gone with the namespace by the time anyone reads the failure: say why they
      // were not ready (a fresh-clone CI once saw the gateway restarting for 10 min, and nothing more)
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}\n${await this.podReport(RELEASE_NS)}`,
      );
    }
  }

  /** The namespace's pods, and for each container that is not ready its last termination and log tail. */
  async podReport(namespace: string): Promise<string> {
    const out: string[] = [];
    const r = await this.exec("kubectl", ["get", "pods", "-n", namespace, "-o", "json"]);
    if (r.code !== 0) return `(kubectl get pods -n ${namespace}: ${r.stderr.trim()})`;
    const pods = (JSON.parse(r.stdout) as { items: KubeObject[] }).items as Array<
      KubeObject & {
        status?: {
          phase?: string;
          containerStatuses?: Array<{
            name: string;
            ready?: boolean;
            restartCount?: number;
            state?: unknown;
            lastState?: unknown;
          }>;
        };
      }
    >;
    for (const pod of pods) {
      const name = pod.metadata?.name ?? "?";
      out.push(`pod ${name}: ${pod.status?.phase ?? "?"}`);
      for (const c of pod.status?.containerStatuses ?? []) {
        out.push(
          `  ${c.name}: ready ${c.ready}, restarts ${c.restartCount ?? 0}, state ${JSON.stringify(c.state)}, last ${JSON.stringify(c.lastState)}`,
        );
        if (c.ready) continue;
        for (const previous of [true, false]) {
          const logs = await this.exec("kubectl", [
            "logs",
            "-n",
            namespace,
            name,
            "-c",
            c.name,
            "--tail=30",
            ...(previous ? ["--previous"] : []),
          ]);
          if (logs.code === 0 && logs.stdout.trim())
            out.push(
              `  ${previous ? "previous " : ""}log of ${c.name}:\n${logs.stdout.trimEnd().replace(/^/gm, "    ")}`,
            );
        }
      }
    }
    return out.join("\n");
  }

  /**
   * The chart installs and upgrades the CRD (crds.enabled). A CRD already in the cluster that Helm did not
   * create (applied with kubectl, as the other suites sharing the test bed do, or left by an earlier release)
   * is handed over to this release first, as the chart README says ("The CRD"); on a fresh cluster there is
   * nothing to hand over and helm creates it.
   */
  private async handOverCrd(): Promise<void> {
    for (const crd of [CRD_NAME, POOL_CRD_NAME]) {
      const found = await this.kubectl(["get", "crd", crd, "--ignore-not-found", "-o", "name"]);
      if (!found.trim()) continue;
      await this.kubectl(["label", "crd", crd, "app.kubernetes.io/managed-by=Helm", "--overwrite"]);
      await this.kubectl([
        "annotate",
        "crd",
        crd,
        "--overwrite",
        `meta.helm.sh/release-name=${RELEASE}`,
        `meta.helm.sh/release-namespace=${RELEASE_NS}`,
      ]);
    }
  }

  async helmUninstall(): Promise<void> {
    await this.exec("helm", ["uninstall", RELEASE, "--namespace", RELEASE_NS, "--wait", "--timeout", "5m"], {
      timeoutMs: 360_000,
    });
  }

  /**
   * A read that the API server did not answer (a timeout, a reset: at load average 45 on 2 cores it timed
   * GETs out after 60 s) is asked again, up to 3 times; an answer, an error status included, is final.
   */
  private async read<T>(fn: (k: KubeClient) => Promise<T>): Promise<T> {
    const k = await this.kube();
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(k);
      } catch (err) {
        if (err instanceof KubeApiError || attempt >= 3) throw err;
        this.log(`a read of the API server failed (${String(err)}); asking again`);
      }
    }
  }

  async pods(namespace: string, selector?: string): Promise<Pod[]> {
    const list = await this.read((k) =>
      k.get<{ items: Pod[] }>(resourcePath(CORE.pods, namespace), {
        ...(selector ? { query: { labelSelector: selector } } : {}),
        timeoutMs: 60_000,
      }),
    );
    return list.items;
  }

  /** The Lease of the operator's leader election: who holds it. */
  async leaseHolder(): Promise<string | null> {
    const lease = await this.read((k) =>
      k.getOrNull<{ spec?: { holderIdentity?: string } }>(
        resourcePath(CORE.leases, RELEASE_NS, "livy-operator-leader"),
        { timeoutMs: 60_000 },
      ),
    );
    return lease?.spec?.holderIdentity ?? null;
  }

  // ------------------------------------------------------------------------------------- LivySessions

  async get(namespace: string, name: string): Promise<LivySession | null> {
    return await this.read((k) =>
      k.getOrNull<LivySession>(resourcePath(LIVYSESSIONS, namespace, name), { timeoutMs: 60_000 }),
    );
  }

  /**
   * Polls the LivySession every 100 ms until `pred` holds; logs each phase and reason it passes through.
   * Fails with the last status when `timeoutMs` passes, or at once when `fail` holds.
   */
  async waitFor(
    namespace: string,
    name: string,
    what: string,
    pred: (ls: LivySession) => boolean,
    timeoutMs: number,
    fail: (ls: LivySession) => boolean = () => false,
  ): Promise<LivySession> {
    const deadline = Date.now() + timeoutMs;
    let seen = "";
    let last: LivySession | null = null;
    while (Date.now() < deadline) {
      last = await this.get(namespace, name).catch(() => last);
      if (last) {
        const r = readyCondition(last);
        const now = `${phaseOf(last)} ${r?.reason ?? ""}`;
        if (now !== seen) {
          this.log(`${namespace}/${name}: ${now}${r?.message ? ` (${r.message})` : ""}`);
          seen = now;
        }
        if (pred(last)) return last;
        if (fail(last))
          throw new Error(
            `${namespace}/${name} ${now} while waiting for ${what}: ${last.status?.message ?? ""}`,
          );
      }
      await sleep(100);
    }
    throw new Error(
      `timed out after ${timeoutMs / 1000} s waiting for ${namespace}/${name} to be ${what}; last status: ${JSON.stringify(last?.status ?? null)}`,
    );
  }

  /** Ready, failing at once if it fails (Failed) instead. */
  waitReady(namespace: string, name: string, timeoutMs: number): Promise<LivySession> {
    return this.waitFor(
      namespace,
      name,
      "Ready",
      (ls) => phaseOf(ls) === "Ready",
      timeoutMs,
      (ls) => phaseOf(ls) === "Failed",
    );
  }

  /** The operator's objects left in a namespace: pods, ReplicaSets, Deployments, Services, ConfigMaps, Secrets. */
  async ownedLeft(namespace: string): Promise<string[]> {
    const out = await this.kubectl([
      "get",
      "pods,replicasets,deployments,services,configmaps,secrets,networkpolicies",
      "-n",
      namespace,
      "-l",
      MANAGED,
      "-o",
      "name",
    ]);
    return out.split("\n").filter((l) => l.trim() !== "");
  }

  /** Every pod, ReplicaSet, Deployment, Service, ConfigMap and Secret in a namespace, labelled or not. */
  async everythingIn(namespace: string): Promise<string[]> {
    const out = await this.kubectl([
      "get",
      "pods,replicasets,deployments,services,configmaps,secrets",
      "-n",
      namespace,
      "-o",
      "name",
    ]);
    return out.split("\n").filter((l) => l.trim() !== "");
  }

  /** The Livy server pods of a LivySession (the operator labels them with its name). */
  livyPods(namespace: string, name: string): Promise<Pod[]> {
    return this.pods(namespace, `app.kubernetes.io/instance=${name},${MANAGED}`);
  }

  /**
   * The Livy sessions on a LivySession's server, as Livy lists them, read inside the Livy pod (an
   * inspection, not a client's path): to count duplicates. With the per-session credential the server
   * demands it: read from the Secret the pod mounts, never printed.
   */
  async livySessionsOnServer(namespace: string, name: string): Promise<ServerSession[]> {
    const code = [
      "import json, os, urllib.request",
      `f = '${CREDENTIAL_MOUNT_DIR}/${CREDENTIAL_SECRET_KEY}'`,
      "h = {'Authorization': 'Bearer ' + open(f).read().strip()} if os.path.exists(f) else {}",
      "q = urllib.request.Request('http://127.0.0.1:8998/sessions?size=1000', headers=h)",
      "r = json.load(urllib.request.urlopen(q, timeout=20))",
      "print(json.dumps([{'id': s['id'], 'name': s.get('name'), 'state': s['state']} for s in r['sessions']]))",
    ].join("\n");
    const out = await this.kubectl([
      "exec",
      "-n",
      namespace,
      `deploy/livy-${name}`,
      "--",
      "python3",
      "-c",
      code,
    ]);
    return JSON.parse(out) as ServerSession[];
  }

  /**
   * livyctl in the cluster, as a notebook pod runs it: a pod of the operator image (which carries livyctl)
   * in `clientNs`, under a ServiceAccount bound to the `edit` role in the session's namespace, running
   * `livyctl <args>` with its in-cluster configuration; it reaches the Livy server through the API server
   * and the gateway (the chart's default), or at the Service in status without them. Resolves with the pod's output and exit code.
   */
  async livyctlInCluster(
    clientNs: string,
    sessionNs: string,
    args: string[],
    timeoutMs: number,
  ): Promise<{ code: number; output: string }> {
    const k = await this.kube();
    const pod = `livyctl-${Date.now().toString(36)}`;
    await this.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "notebook", namespace: clientNs } },
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "RoleBinding",
            metadata: { name: `notebook-${clientNs}`, namespace: sessionNs },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "edit" },
            subjects: [{ kind: "ServiceAccount", name: "notebook", namespace: clientNs }],
          },
        ],
      }),
    );
    await k.create(resourcePath(CORE.pods, clientNs), {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: pod, namespace: clientNs },
      spec: {
        serviceAccountName: "notebook",
        restartPolicy: "Never",
        securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: "RuntimeDefault" } },
        containers: [
          {
            name: "livyctl",
            image: this.cluster.images.operator,
            imagePullPolicy: "IfNotPresent",
            command: ["node", "dist/cli/main.js", ...args],
            securityContext: {
              allowPrivilegeEscalation: false,
              readOnlyRootFilesystem: true,
              capabilities: { drop: ["ALL"] },
            },
          },
        ],
      },
    });
    const deadline = Date.now() + timeoutMs;
    let p: Pod | null = null;
    while (Date.now() < deadline) {
      // a look that fails (the API server timed a GET out after 60 s at load 45) is not an answer: look again
      p = await k.getOrNull<Pod>(resourcePath(CORE.pods, clientNs, pod)).catch(() => p);
      if (p?.status?.phase === "Succeeded" || p?.status?.phase === "Failed") break;
      await sleep(250);
    }
    const output = await this.kubectl(["logs", "-n", clientNs, pod]).catch((e: Error) => e.message);
    const code = p?.status?.containerStatuses?.[0]?.state?.terminated?.exitCode;
    await k.delete(resourcePath(CORE.pods, clientNs, pod)).catch(() => undefined);
    if (code === undefined)
      throw new Error(`livyctl pod ${clientNs}/${pod} did not end within ${timeoutMs / 1000} s: ${output}`);
    return { code, output };
  }

  /** A namespace (no-op when it exists). */
  async namespace(name: string): Promise<void> {
    await this.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name } }),
    );
  }
}

/** Kubernetes' second-resolution timestamps as epoch ms. */
export const ms = (t: string | undefined): number => (t ? Date.parse(t) : Number.NaN);
