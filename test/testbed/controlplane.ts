import { execFile } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { promisify } from "node:util";
import { generatePki, type Pki } from "./certs.ts";
import type { GoBinaries } from "./paths.ts";
import { freePort, type RunningProcess, startProcess, waitUntil } from "./process.ts";

const run = promisify(execFile);

export interface ControlPlane {
  apiserverUrl: string;
  kubeconfig: string;
  etcdUrl: string;
  processes: RunningProcess[];
  pki: Pki;
}

/** Where the API server listens, and the ranges it allocates from (a test bed's slot: see slots.ts). */
export interface ControlPlaneNetwork {
  /** The API server binds and advertises it: the host side of the real node's veth. */
  hostIp: string;
  serviceCidr: string;
  kubernetesServiceIp: string;
  nodeIp: string;
}

export const FAKE_NODE = "kwok-node-0";

/** The taint that keeps pods off the kwok node unless they tolerate it. */
export const KWOK_TAINT = { key: "kwok.x-k8s.io/node", value: "fake", effect: "NoSchedule" } as const;

/**
 * Namespace annotations that send every pod of the namespace to the kwok node, through the API server's
 * PodNodeSelector and PodTolerationRestriction admission plugins: tests and benchmarks that exercise the
 * operator at scale against fake pods set them on their namespaces; other namespaces schedule on the real node.
 */
/** A pod spec's fields that place it on the kwok node (for pods outside such a namespace). */
export const KWOK_POD_PLACEMENT = {
  nodeSelector: { type: "kwok" },
  tolerations: [{ key: KWOK_TAINT.key, operator: "Exists", effect: KWOK_TAINT.effect }],
};

export const KWOK_NAMESPACE_ANNOTATIONS: Readonly<Record<string, string>> = {
  "scheduler.alpha.kubernetes.io/node-selector": "type=kwok",
  "scheduler.alpha.kubernetes.io/defaultTolerations": JSON.stringify([
    { key: KWOK_TAINT.key, operator: "Exists", effect: KWOK_TAINT.effect },
  ]),
};

function b64(file: string): string {
  return readFileSync(file).toString("base64");
}

export function writeKubeconfig(path: string, server: string, pki: Pki): void {
  const yaml = `apiVersion: v1
kind: Config
clusters:
- name: livy-testbed
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(pki.caCert)}
users:
- name: admin
  user:
    client-certificate-data: ${b64(pki.adminCert)}
    client-key-data: ${b64(pki.adminKey)}
contexts:
- name: livy-testbed
  context:
    cluster: livy-testbed
    user: admin
    namespace: default
current-context: livy-testbed
`;
  writeFileSync(path, yaml, { mode: 0o600 });
}

function httpsOk(url: string, pki: Pki): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        ca: readFileSync(pki.caCert),
        cert: readFileSync(pki.adminCert),
        key: readFileSync(pki.adminKey),
        timeout: 2_000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

async function httpOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

export async function kubectl(
  bins: GoBinaries,
  kubeconfig: string,
  args: string[],
  input?: string,
): Promise<string> {
  const child = run(bins.kubectl, args, {
    env: { ...process.env, KUBECONFIG: kubeconfig },
    maxBuffer: 64 << 20,
  });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  const { stdout } = await child;
  return stdout;
}

/** The kwok stages that make fake nodes Ready and Pods Running/Ready, and delete Pods being deleted. */
function kwokConfig(bins: GoBinaries): string {
  const files = [
    join(bins.kwokStages, "node", "fast", "node-initialize.yaml"),
    join(bins.kwokStages, "node", "heartbeat-with-lease", "node-heartbeat-with-lease.yaml"),
    ...readdirSync(join(bins.kwokStages, "pod", "fast"))
      .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
      .map((f) => join(bins.kwokStages, "pod", "fast", f)),
  ];
  return files.map((f) => readFileSync(f, "utf8").trim()).join("\n---\n");
}

/**
 * etcd, kube-apiserver (Node and RBAC authorization, NodeRestriction, client-certificate admin, reaching
 * kubelets with its own client certificate), kube-controller-manager (Deployments, ReplicaSets, garbage
 * collection, service accounts), kube-scheduler and kwok with one fake node (tainted), as local processes:
 * etcd and the others on loopback ports, the API server on the address the real node reaches. Each step fails
 * with the component's name and the tail of its log.
 */
export async function startControlPlane(
  bins: GoBinaries,
  stateDir: string,
  record: (p: RunningProcess) => void,
  net: ControlPlaneNetwork,
  nodeName: string,
): Promise<ControlPlane> {
  const pki = generatePki(join(stateDir, "pki"), {
    apiserverIp: net.hostIp,
    kubernetesServiceIp: net.kubernetesServiceIp,
    nodeName,
    nodeIp: net.nodeIp,
  });
  const processes: RunningProcess[] = [];
  const track = (p: RunningProcess) => {
    processes.push(p);
    record(p);
    return p;
  };

  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const etcd = track(
    startProcess(
      {
        name: "etcd",
        command: bins.etcd,
        args: [
          `--data-dir=${join(stateDir, "etcd")}`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
          `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
          "--unsafe-no-fsync",
          "--log-level=warn",
        ],
      },
      stateDir,
    ),
  );
  await waitUntil("etcd", () => httpOk(`${etcdUrl}/health`), { timeoutMs: 30_000, proc: etcd });

  const apiserverUrl = `https://${net.hostIp}:${apiPort}`;
  const apiserver = track(
    startProcess(
      {
        name: "kube-apiserver",
        command: bins.kubeApiserver,
        args: [
          `--etcd-servers=${etcdUrl}`,
          `--bind-address=${net.hostIp}`,
          `--advertise-address=${net.hostIp}`,
          `--secure-port=${apiPort}`,
          `--tls-cert-file=${pki.servingCert}`,
          `--tls-private-key-file=${pki.servingKey}`,
          `--client-ca-file=${pki.caCert}`,
          // the aggregation layer (the gateway's API at /apis/livy.dev/gateway): requests forwarded with the
          // caller's identity in headers, signed by the front proxy's own CA
          `--requestheader-client-ca-file=${pki.frontProxyCaCert}`,
          "--requestheader-allowed-names=front-proxy-client",
          "--requestheader-username-headers=X-Remote-User",
          "--requestheader-group-headers=X-Remote-Group",
          "--requestheader-extra-headers-prefix=X-Remote-Extra-",
          `--proxy-client-cert-file=${pki.frontProxyClientCert}`,
          `--proxy-client-key-file=${pki.frontProxyClientKey}`,
          // to an APIService's pods by their IPs, not its Service's ClusterIP: this API server runs on the
          // host, outside the real node's network namespace where kube-proxy's Service rules live (pod IPs
          // are routed to it; ClusterIPs are not). A kubeadm or kind API server runs on a node and needs none
          "--enable-aggregator-routing=true",
          "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
          `--service-account-key-file=${pki.saPub}`,
          `--service-account-signing-key-file=${pki.saKey}`,
          `--service-cluster-ip-range=${net.serviceCidr}`,
          "--authorization-mode=Node,RBAC",
          "--enable-admission-plugins=NodeRestriction,PodNodeSelector,PodTolerationRestriction",
          `--kubelet-client-certificate=${pki.kubeletClientCert}`,
          `--kubelet-client-key=${pki.kubeletClientKey}`,
          `--kubelet-certificate-authority=${pki.caCert}`,
          "--kubelet-preferred-address-types=InternalIP",
          "--allow-privileged=true",
          "--enable-priority-and-fairness=false",
          "--profiling=false",
          "--v=0",
        ],
      },
      stateDir,
    ),
  );
  await waitUntil("kube-apiserver", () => httpsOk(`${apiserverUrl}/readyz`, pki), {
    timeoutMs: 120_000,
    proc: apiserver,
    intervalMs: 500,
  });

  const kubeconfig = join(stateDir, "kubeconfig");
  writeKubeconfig(kubeconfig, apiserverUrl, pki);

  const kcm = track(
    startProcess(
      {
        name: "kube-controller-manager",
        command: bins.kubeControllerManager,
        args: [
          `--kubeconfig=${kubeconfig}`,
          `--authentication-kubeconfig=${kubeconfig}`,
          `--authorization-kubeconfig=${kubeconfig}`,
          "--bind-address=127.0.0.1",
          `--secure-port=${await freePort()}`,
          `--root-ca-file=${pki.caCert}`,
          `--service-account-private-key-file=${pki.saKey}`,
          `--cluster-signing-cert-file=${pki.caCert}`,
          `--cluster-signing-key-file=${pki.caKey}`,
          "--leader-elect=false",
          "--controllers=*,-nodeipam,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-cloud-node-lifecycle,-ttl",
          "--profiling=false",
        ],
      },
      stateDir,
    ),
  );
  const scheduler = track(
    startProcess(
      {
        name: "kube-scheduler",
        command: bins.kubeScheduler,
        args: [
          `--kubeconfig=${kubeconfig}`,
          `--authentication-kubeconfig=${kubeconfig}`,
          `--authorization-kubeconfig=${kubeconfig}`,
          "--bind-address=127.0.0.1",
          `--secure-port=${await freePort()}`,
          "--leader-elect=false",
          "--profiling=false",
        ],
      },
      stateDir,
    ),
  );
  const kwokConfigPath = join(stateDir, "kwok.yaml");
  writeFileSync(kwokConfigPath, kwokConfig(bins));
  const kwok = track(
    startProcess(
      {
        name: "kwok",
        command: bins.kwok,
        args: [
          `--kubeconfig=${kubeconfig}`,
          `--config=${kwokConfigPath}`,
          "--manage-all-nodes=false",
          "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
          "--cidr=10.244.0.0/16",
          "--node-ip=127.0.0.1",
          // the node lifecycle controller judges liveness by the node Lease: without one the node turns
          // NotReady after ~50 s and every pod on it unready (the heartbeat stage relies on the lease)
          "--node-lease-duration-seconds=40",
          `--server-address=127.0.0.1:${await freePort()}`,
        ],
        env: { HOME: stateDir },
      },
      stateDir,
    ),
  );

  // The service-account controller creating `default` shows kube-controller-manager is up.
  await waitUntil(
    "kube-controller-manager",
    async () =>
      (await kubectl(bins, kubeconfig, ["get", "serviceaccount", "default", "-o", "name"])).length > 0,
    { timeoutMs: 90_000, proc: kcm, intervalMs: 500 },
  );
  await kubectl(bins, kubeconfig, ["apply", "-f", "-"], fakeNodeManifest(FAKE_NODE));
  await waitUntil(
    "kwok (fake node Ready, not-ready taint removed by the node lifecycle controller)",
    async () => {
      const [ready, taints] = (
        await kubectl(bins, kubeconfig, [
          "get",
          "node",
          FAKE_NODE,
          "-o",
          "jsonpath={.status.conditions[?(@.type=='Ready')].status}|{.spec.taints[*].key}",
        ])
      ).split("|");
      return ready === "True" && !taints?.includes("node.kubernetes.io/not-ready");
    },
    { timeoutMs: 60_000, proc: kwok, intervalMs: 300 },
  );
  await waitUntil("kube-scheduler", async () => true, { timeoutMs: 1_000, proc: scheduler });
  return { apiserverUrl, kubeconfig, etcdUrl, processes, pki };
}

export function fakeNodeManifest(name: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      annotations: { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
      labels: {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node-role.kubernetes.io/agent": "",
        type: "kwok",
      },
    },
    spec: { taints: [KWOK_TAINT] },
    status: {
      allocatable: { cpu: "64", memory: "512Gi", pods: "2000" },
      capacity: { cpu: "64", memory: "512Gi", pods: "2000" },
      nodeInfo: {
        kubeletVersion: "fake",
        kubeProxyVersion: "fake",
        operatingSystem: "linux",
        architecture: "amd64",
      },
    },
  });
}
