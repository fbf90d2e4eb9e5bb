/**
 * The test bed's real node: containerd, runc, CNI, a kubelet and kube-proxy, in a network namespace and a
 * private mount namespace of their own (like a kind node, without Docker), so that their iptables rules,
 * routes and mounts live and die with the test bed. See slots.ts for the addresses, and the README's test
 * bed section for the layout.
 *
 * - A holder process (the pause program, started by `unshare --net --mount`) keeps both namespaces; every
 *   daemon enters them with `nsenter -t <holder> -n -m`. Inside, tmpfs over /run, /var/lib and /var/log hide
 *   the host's, and the state dir's node/ directories are bound to /var/lib/kubelet, /var/lib/cni,
 *   /var/log/pods and /var/log/containers: nothing the kubelet or containerd write lands outside the state dir.
 * - The holder and the daemons run in the cgroup <cgroupRoot>/node of every hierarchy, the pods under the
 *   kubelet's cgroupRoot: `down` freezes the subtree, kills all of it (shims and containers included) and
 *   removes the cgroups; the namespaces, their mounts, the veth and its routes go with the last process.
 * - A veth joins the namespace to the host. The namespace has no default route: besides the link and the pod
 *   bridge, only the slot's Service range goes to the host (a ClusterIP needs a route before kube-proxy's
 *   DNAT), so nothing on the node can reach another machine. It was 10.244.0.0/14 (every test bed's range):
 *   the host forwards what it has no route for to its default route, so a packet to a kwok pod's IP (a
 *   ClusterIP with kwok endpoints, DNATed here) or to an idle slot's range would have left the machine. The
 *   host routes the slot's pod and Service ranges to the veth, so that a ClusterIP never follows the default
 *   route off the machine, even while kube-proxy is stopped.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import YAML from "yaml";
import type { Pki } from "./certs.ts";
import { ensureNodeImages, type NodeImages } from "./node-images.ts";
import { cacheDir, type GoBinaries, TESTBED_DIR, versions } from "./paths.ts";
import { isAlive, type RunningProcess, startProcess, waitUntil } from "./process.ts";
import {
  claimSlot,
  type NodeNetwork,
  networkFor,
  readOwner,
  releaseSlot,
  type SlotOwner,
  setOwners,
  takeDeadSlots,
} from "./slots.ts";

const run = promisify(execFile);

export const REAL_NODE = "real-node-0";

export interface NodeState extends NodeNetwork {
  name: string;
  /** <stateDir>/node: containerd's root and state, the kubelet's root dir, CNI state, pod logs, configs. */
  dir: string;
  holderPid: number;
  /** containerd's socket, reachable from the host: `ctr --address <it> -n k8s.io images import <tar>`. */
  containerdSock: string;
  images: NodeImages;
}

async function sh(cmd: string, args: string[], what = `${cmd} ${args.join(" ")}`): Promise<string> {
  try {
    return (await run(cmd, args, { maxBuffer: 16 << 20 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${what}: ${(e.stderr ?? "").trim() || e.message}`);
  }
}

/** The cgroup hierarchies mounted on this machine (v1 controllers, the named systemd one, and cgroup2). */
export function cgroupMounts(): string[] {
  const mounts: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [pre, post] = line.split(" - ");
    const fstype = post?.split(" ")[0];
    if (fstype !== "cgroup" && fstype !== "cgroup2") continue;
    const mnt = pre?.split(" ")[4];
    if (mnt) mounts.push(mnt);
  }
  return mounts;
}

function createCgroups(net: NodeNetwork): void {
  for (const m of cgroupMounts()) {
    for (const rel of [net.cgroupRoot, `${net.cgroupRoot}/node`]) {
      const dir = join(m, rel);
      mkdirSync(dir, { recursive: true });
      // a cpuset cgroup takes no task until it has CPUs and memory nodes: those of its parent
      if (existsSync(join(dir, "cpuset.cpus"))) {
        for (const f of ["cpuset.cpus", "cpuset.mems"]) {
          if (readFileSync(join(dir, f), "utf8").trim() === "")
            writeFileSync(join(dir, f), readFileSync(join(dir, "..", f), "utf8"));
        }
      }
    }
  }
}

/** A shell prefix that moves the shell into the node's cgroup in every hierarchy, before it execs on. */
function enterCgroups(net: NodeNetwork): string {
  const procs = cgroupMounts().map((m) => `'${join(m, net.cgroupRoot, "node", "cgroup.procs")}'`);
  return `for f in ${procs.join(" ")}; do echo $$ > "$f"; done; `;
}

/** A process spec that runs `command` in the node's cgroups and namespaces. */
function inNode(net: NodeNetwork, holderPid: number, name: string, command: string, args: string[]) {
  return {
    name,
    command: "sh",
    args: ["-c", `${enterCgroups(net)}exec nsenter -t ${holderPid} -n -m -- "$@"`, "sh", command, ...args],
  };
}

/** Runs a command inside the node's namespaces (not its cgroups: it is short-lived). */
export async function nodeExec(holderPid: number, args: string[]): Promise<string> {
  return await sh("nsenter", ["-t", String(holderPid), "-n", "-m", "--", ...args]);
}

function preflight(stateDir: string): void {
  if (process.getuid?.() !== 0)
    throw new Error("the real node needs root (network and mount namespaces, cgroups, a veth)");
  const missing = ["unshare", "nsenter", "ip", "iptables", "containerd", "runc", "ctr", "tar"].filter(
    (c) => !process.env.PATH?.split(":").some((d) => existsSync(join(d, c))),
  );
  if (!existsSync("/usr/lib/cni/bridge")) missing.push("/usr/lib/cni (containernetworking-plugins)");
  if (missing.length)
    throw new Error(`the real node needs ${missing.join(", ")}: run scripts/system-deps.sh (make test does)`);
  const abs = resolve(stateDir);
  for (const hidden of ["/run", "/var/run", "/var/lib", "/var/log"])
    if (abs === hidden || abs.startsWith(`${hidden}/`))
      throw new Error(
        `state dir ${abs}: the node's mount namespace lays tmpfs over ${hidden}, so the state dir cannot be there`,
      );
}

/** What a dead test bed's slot may have left on the host: processes, cgroups, the veth and its routes. */
async function cleanupSlot(net: NodeNetwork): Promise<void> {
  await killCgroupTree(net.cgroupRoot);
  await sh("ip", ["link", "del", net.vethHost]).catch(() => "");
  for (const cidr of [net.podCidr, net.serviceCidr]) await sh("ip", ["route", "del", cidr]).catch(() => "");
  removeCgroups(net.cgroupRoot);
}

function procsUnder(dir: string): number[] {
  const pids: number[] = [];
  const walk = (d: string) => {
    try {
      for (const p of readFileSync(join(d, "cgroup.procs"), "utf8").split("\n")) if (p) pids.push(Number(p));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      /* gone meanwhile */
    }
  };
  walk(dir);
  return pids;
}

/** Freezes the subtree (no process can fork meanwhile), SIGKILLs every process in it, thaws, waits until empty. */
async function killCgroupTree(rel: string): Promise<void> {
  const freezer = cgroupMounts().find((m) => m.endsWith("/freezer"));
  const track = freezer ?? cgroupMounts()[0];
  if (!track) return;
  const root = join(track, rel);
  if (!existsSync(root)) return;
  const state = join(root, "freezer.state");
  if (freezer && existsSync(state)) {
    writeFileSync(state, "FROZEN");
    for (let i = 0; i < 100 && readFileSync(state, "utf8").trim() !== "FROZEN"; i++) await sleep(10);
  }
  for (const pid of procsUnder(root)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* exited */
    }
  }
  if (freezer && existsSync(state)) writeFileSync(state, "THAWED");
  const deadline = Date.now() + 20_000;
  while (procsUnder(root).length && Date.now() < deadline) {
    for (const pid of procsUnder(root)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* exited */
      }
    }
    await sleep(50);
  }
  const left = procsUnder(root);
  if (left.length) throw new Error(`processes ${left.join(", ")} in cgroup ${rel} did not die`);
}

/** Removes the cgroup subtree in every hierarchy, deepest first (rmdir: only empty cgroups go). */
function removeCgroups(rel: string): void {
  const rm = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) rm(join(d, e.name));
    try {
      rmdirSync(d);
    } catch {
      /* a process still in it: reported by the caller's check */
    }
  };
  for (const m of cgroupMounts()) rm(join(m, rel));
}

/** Slots whose test bed died without `down`: what they left on the host is removed. */
export async function sweepDeadSlots(log: (m: string) => void): Promise<void> {
  for (const { slot, owner } of takeDeadSlots()) {
    log(`slot ${slot} (${(owner as SlotOwner | null)?.stateDir ?? "?"}): its test bed is gone; cleaning up`);
    await cleanupSlot(networkFor(slot));
  }
}

/**
 * Claims a slot and builds the node's namespaces, cgroups, veth and routes. Before the control plane: the API
 * server binds the host side of the veth. `record` gets the holder process (so that a failed `up` stops it).
 */
export async function prepareNode(
  stateDir: string,
  bins: GoBinaries,
  record: (p: RunningProcess) => void,
  onNetwork: (net: NodeNetwork) => void,
  log: (m: string) => void,
): Promise<{ net: NodeNetwork; holder: RunningProcess }> {
  preflight(stateDir);
  await sweepDeadSlots(log);
  const net = claimSlot(stateDir);
  onNetwork(net);
  // a slot is free only once its last user is gone, but a crash may have left this slot's leftovers
  await cleanupSlot(net);
  createCgroups(net);
  const dir = join(stateDir, "node");
  for (const d of ["kubelet", "cni/net.d", "cni/lib", "log/pods", "log/containers", "containerd"])
    mkdirSync(join(dir, d), { recursive: true });

  const holder = startProcess(
    {
      name: "node-holder",
      command: "sh",
      args: [
        "-c",
        `${enterCgroups(net)}exec unshare --net --mount --propagation private -- "$@"`,
        "sh",
        bins.pause,
        `livy-testbed-slot-${net.slot}`,
        stateDir,
      ],
    },
    stateDir,
  );
  record(holder);
  const link = (path: string) => {
    try {
      return readlinkSync(path);
    } catch {
      return "";
    }
  };
  await waitUntil(
    "node namespaces",
    async () => {
      // the holder has exec'd the pause program inside new namespaces
      return (
        link(`/proc/${holder.pid}/exe`) === bins.pause &&
        link(`/proc/${holder.pid}/ns/net`) !== link("/proc/self/ns/net") &&
        link(`/proc/${holder.pid}/ns/mnt`) !== link("/proc/self/ns/mnt")
      );
    },
    { timeoutMs: 10_000, proc: holder, intervalMs: 20 },
  );
  // from now on the slot lives as long as the holder (this process may be a short `testbed up`)
  setOwners(net.slot, stateDir, [holder.pid]);

  const bind = (src: string, dst: string) => `mkdir -p '${dst}' && mount --bind '${src}' '${dst}'`;
  await nodeExec(holder.pid, [
    "sh",
    "-ec",
    [
      // the host's /run, /var/lib and /var/log stay out of sight and untouched
      "mount -t tmpfs -o mode=755 tmpfs /run",
      "mount -t tmpfs -o mode=755 tmpfs /var/lib",
      "mount -t tmpfs -o mode=755 tmpfs /var/log",
      bind(join(dir, "kubelet"), "/var/lib/kubelet"),
      bind(join(dir, "cni", "lib"), "/var/lib/cni"),
      bind(join(dir, "log", "pods"), "/var/log/pods"),
      bind(join(dir, "log", "containers"), "/var/log/containers"),
      "ip link set lo up",
      "echo 1 > /proc/sys/net/ipv4/ip_forward",
      // Service traffic between pods on the same bridge must pass iptables (kube-proxy's DNAT and its undo)
      "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables",
    ].join("\n"),
  ]);
  await sh("ip", [
    "link",
    "add",
    net.vethHost,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    String(holder.pid),
  ]);
  await sh("ip", ["addr", "add", `${net.hostIp}/24`, "dev", net.vethHost]);
  await sh("ip", ["link", "set", net.vethHost, "up"]);
  await nodeExec(holder.pid, [
    "sh",
    "-ec",
    [
      `ip addr add ${net.nodeIp}/24 dev eth0`,
      "ip link set eth0 up",
      // no default route: the node reaches the host's link, its pods and its ClusterIPs, nothing else
      `ip route add ${net.serviceCidr} via ${net.hostIp} dev eth0`,
    ].join("\n"),
  ]);
  for (const cidr of [net.podCidr, net.serviceCidr])
    await sh("ip", ["route", "add", cidr, "via", net.nodeIp, "dev", net.vethHost]);
  return { net, holder };
}

function kubeconfigFor(server: string, pki: Pki, cert: string, key: string): string {
  const b64 = (f: string) => readFileSync(f).toString("base64");
  return `apiVersion: v1
kind: Config
clusters:
- name: livy-testbed
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(pki.caCert)}
users:
- name: me
  user:
    client-certificate-data: ${b64(cert)}
    client-key-data: ${b64(key)}
contexts:
- name: livy-testbed
  context: {cluster: livy-testbed, user: me}
current-context: livy-testbed
`;
}

export function containerdConfig(dir: string, sock: string, pauseImage: string): string {
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
# the images are imported, never pulled, and the test beds' plugins are the only ones needed
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "${sock}"
[ttrpc]
  address = "${sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  # this VM withholds CAP_SYS_RESOURCE: no negative oom_score_adj for anything
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${dir}/cni/net.d"
`;
}

export function cniConfig(net: NodeNetwork): string {
  return `${JSON.stringify(
    {
      cniVersion: "1.0.0",
      name: "livy-testbed",
      plugins: [
        {
          type: "bridge",
          bridge: "cni0",
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: { type: "host-local", ranges: [[{ subnet: net.podCidr }]], routes: [{ dst: "0.0.0.0/0" }] },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  )}\n`;
}

function kubeletConfig(net: NodeNetwork, pki: Pki, dir: string, sock: string): string {
  return `${JSON.stringify(
    {
      apiVersion: "kubelet.config.k8s.io/v1beta1",
      kind: "KubeletConfiguration",
      address: net.nodeIp,
      port: 10250,
      readOnlyPort: 0,
      healthzBindAddress: "127.0.0.1",
      healthzPort: 10248,
      tlsCertFile: pki.nodeServingCert,
      tlsPrivateKeyFile: pki.nodeServingKey,
      rotateCertificates: false,
      serverTLSBootstrap: false,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: pki.caCert },
      },
      authorization: { mode: "Webhook" },
      containerRuntimeEndpoint: `unix://${sock}`,
      // cgroup v1 on this VM, no systemd: cgroupfs, under this test bed's own root
      cgroupDriver: "cgroupfs",
      cgroupRoot: net.cgroupRoot,
      failCgroupV1: false,
      failSwapOn: false,
      // no CAP_SYS_RESOURCE here: a negative score is refused and would fail every pod
      oomScoreAdj: 0,
      // pods get the cluster DNS only: never the VM's resolver (nothing may talk to other hosts)
      resolvConf: join(dir, "resolv.conf"),
      clusterDNS: [net.dnsServiceIp],
      clusterDomain: "cluster.local",
      // a test bed shares the machine's disk: no eviction or image collection for disk pressure
      evictionHard: { "memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%" },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      serializeImagePulls: false,
      maxPods: 110,
      nodeStatusReportFrequency: "10s",
      staticPodPath: "",
      enableDebuggingHandlers: true,
    },
    null,
    2,
  )}\n`;
}

function kubeProxyConfig(net: NodeNetwork, kubeconfig: string): string {
  return `${JSON.stringify(
    {
      apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
      kind: "KubeProxyConfiguration",
      clientConnection: { kubeconfig },
      hostnameOverride: REAL_NODE,
      mode: "iptables",
      clusterCIDR: net.podCidr,
      bindAddress: "0.0.0.0",
      healthzBindAddress: "127.0.0.1:10256",
      metricsBindAddress: "127.0.0.1:10249",
      oomScoreAdj: 0,
      // the conntrack sysctls are left as the kernel has them
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: "0s", tcpCloseWaitTimeout: "0s" },
      iptables: { minSyncPeriod: "0s", syncPeriod: "30s" },
    },
    null,
    2,
  )}\n`;
}

async function kubectlJson(
  bins: GoBinaries,
  kubeconfig: string,
  args: string[],
  input?: string,
): Promise<string> {
  const child = run(bins.kubectl, args, {
    env: { ...process.env, KUBECONFIG: kubeconfig },
    maxBuffer: 16 << 20,
  });
  if (input !== undefined) child.child.stdin?.end(input);
  return (await child).stdout;
}

export interface NodeRuntime {
  containerdSock: string;
  images: NodeImages;
}

/**
 * Starts the node's containerd and imports the images every node has (pause, CoreDNS, probe). Needs no API
 * server: `up` runs it while the control plane starts.
 */
export async function startRuntime(opts: {
  stateDir: string;
  net: NodeNetwork;
  holder: RunningProcess;
  bins: GoBinaries;
  record: (p: RunningProcess) => void;
  /** More `docker save` archives to import (the caller's images), awaited here. */
  extraImages?: string[] | Promise<string[]> | undefined;
}): Promise<NodeRuntime> {
  const { stateDir, net, holder, bins, record } = opts;
  const dir = join(stateDir, "node");
  const sock = join(dir, "containerd", "containerd.sock");
  if (sock.length > 100) throw new Error(`state dir ${stateDir} is too long for containerd's socket path`);
  const images = await ensureNodeImages(bins);
  writeFileSync(join(dir, "containerd", "config.toml"), containerdConfig(dir, sock, images.pause));
  writeFileSync(join(dir, "cni", "net.d", "10-livy-testbed.conflist"), cniConfig(net));
  const containerd = startProcess(
    inNode(net, holder.pid, "containerd", "containerd", ["--config", join(dir, "containerd", "config.toml")]),
    stateDir,
  );
  record(containerd);
  await waitUntil(
    "containerd",
    async () => {
      await sh("ctr", ["--address", sock, "version"]);
      return true;
    },
    { timeoutMs: 30_000, proc: containerd, intervalMs: 100 },
  );
  await Promise.all(images.tars.map((t) => importImage(sock, t)));
  for (const t of (await opts.extraImages) ?? []) await importImage(sock, t);
  return { containerdSock: sock, images };
}

/**
 * Starts the kubelet and kube-proxy in the node's namespaces, waits for the Node to be Ready, and deploys
 * CoreDNS (waitForDns waits for it to serve). After the API server is up.
 */
export async function startNode(opts: {
  stateDir: string;
  net: NodeNetwork;
  holder: RunningProcess;
  runtime: NodeRuntime;
  bins: GoBinaries;
  pki: Pki;
  apiserverUrl: string;
  adminKubeconfig: string;
  record: (p: RunningProcess) => void;
}): Promise<NodeState> {
  const { stateDir, net, holder, bins, pki, apiserverUrl, adminKubeconfig, record } = opts;
  const { containerdSock: sock, images } = opts.runtime;
  const dir = join(stateDir, "node");
  writeFileSync(join(dir, "resolv.conf"), "# the node's pods get the cluster DNS only\n");
  const kubeletKubeconfig = join(dir, "kubelet.kubeconfig");
  writeFileSync(kubeletKubeconfig, kubeconfigFor(apiserverUrl, pki, pki.nodeCert, pki.nodeKey), {
    mode: 0o600,
  });
  const proxyKubeconfig = join(dir, "kube-proxy.kubeconfig");
  writeFileSync(proxyKubeconfig, kubeconfigFor(apiserverUrl, pki, pki.proxyCert, pki.proxyKey), {
    mode: 0o600,
  });
  writeFileSync(join(dir, "kubelet.json"), kubeletConfig(net, pki, dir, sock));
  writeFileSync(join(dir, "kube-proxy.json"), kubeProxyConfig(net, proxyKubeconfig));

  const kubelet = startProcess(
    inNode(net, holder.pid, "kubelet", bins.kubelet, [
      `--config=${join(dir, "kubelet.json")}`,
      `--kubeconfig=${kubeletKubeconfig}`,
      `--hostname-override=${REAL_NODE}`,
      `--node-ip=${net.nodeIp}`,
      "--node-labels=type=real",
      "--v=1",
    ]),
    stateDir,
  );
  record(kubelet);
  const proxy = startProcess(
    inNode(net, holder.pid, "kube-proxy", bins.kubeProxy, [
      `--config=${join(dir, "kube-proxy.json")}`,
      "--v=1",
    ]),
    stateDir,
  );
  record(proxy);
  await waitUntil(
    `kubelet (node ${REAL_NODE} Ready)`,
    async () =>
      (
        await kubectlJson(bins, adminKubeconfig, [
          "get",
          "node",
          REAL_NODE,
          "-o",
          "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        ])
      ).trim() === "True",
    { timeoutMs: 90_000, proc: kubelet, intervalMs: 250 },
  );
  await kubectlJson(bins, adminKubeconfig, ["apply", "-f", "-"], corednsManifests(net, images.coredns));
  return {
    ...net,
    name: REAL_NODE,
    dir,
    holderPid: holder.pid,
    containerdSock: sock,
    images,
  };
}

/** Waits for cluster DNS to serve (its Deployment available): the tests that need DNS call this. */
export async function waitForDns(
  bins: GoBinaries,
  adminKubeconfig: string,
  timeoutMs = 120_000,
): Promise<void> {
  await kubectlJson(bins, adminKubeconfig, [
    "-n",
    "kube-system",
    "wait",
    "--for=condition=Available",
    `--timeout=${Math.round(timeoutMs / 1000)}s`,
    "deployment/coredns",
  ]);
}

/** Imports an image tar (`docker save` format) into the node's containerd, where the kubelet finds it. */
export async function importImage(containerdSock: string, tar: string): Promise<void> {
  await sh("ctr", ["--address", containerdSock, "-n", "k8s.io", "images", "import", tar]);
}

/** Cluster DNS: CoreDNS serving cluster.local only (no forwarding: nothing may talk to other hosts). */
function corednsManifests(net: NodeNetwork, image: string): string {
  const corefile = `.:53 {
    errors
    health :8080
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    cache 5
}
`;
  const items = [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "coredns", namespace: "kube-system" } },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "system:coredns" },
      rules: [
        {
          apiGroups: [""],
          resources: ["endpoints", "services", "pods", "namespaces"],
          verbs: ["list", "watch"],
        },
        { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "system:coredns" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:coredns" },
      subjects: [{ kind: "ServiceAccount", name: "coredns", namespace: "kube-system" }],
    },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "coredns", namespace: "kube-system" },
      data: { Corefile: corefile },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "coredns", namespace: "kube-system", labels: { "k8s-app": "kube-dns" } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { "k8s-app": "kube-dns" } },
        template: {
          metadata: { labels: { "k8s-app": "kube-dns" } },
          spec: {
            serviceAccountName: "coredns",
            // the node's (empty) resolv.conf, not itself
            dnsPolicy: "Default",
            nodeSelector: { type: "real" },
            containers: [
              {
                name: "coredns",
                image,
                imagePullPolicy: "Never",
                args: ["-conf", "/etc/coredns/Corefile"],
                ports: [
                  { name: "dns", containerPort: 53, protocol: "UDP" },
                  { name: "dns-tcp", containerPort: 53, protocol: "TCP" },
                ],
                resources: { requests: { cpu: "50m", memory: "32Mi" }, limits: { memory: "128Mi" } },
                volumeMounts: [{ name: "config", mountPath: "/etc/coredns", readOnly: true }],
                readinessProbe: { httpGet: { path: "/ready", port: 8181 }, periodSeconds: 1 },
                livenessProbe: { httpGet: { path: "/health", port: 8080 }, periodSeconds: 10 },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  capabilities: { add: ["NET_BIND_SERVICE"], drop: ["ALL"] },
                  readOnlyRootFilesystem: true,
                },
              },
            ],
            volumes: [{ name: "config", configMap: { name: "coredns" } }],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "kube-dns", namespace: "kube-system", labels: { "k8s-app": "kube-dns" } },
      spec: {
        clusterIP: net.dnsServiceIp,
        selector: { "k8s-app": "kube-dns" },
        ports: [
          { name: "dns", port: 53, protocol: "UDP", targetPort: 53 },
          { name: "dns-tcp", port: 53, protocol: "TCP", targetPort: 53 },
        ],
      },
    },
  ];
  return JSON.stringify({ apiVersion: "v1", kind: "List", items });
}

/**
 * Removes the node completely: every process in its cgroups (daemons, shims, containers, the holder) is
 * killed, which ends its namespaces with their mounts and iptables rules; then the veth, the host routes, the
 * cgroups and the slot. Safe to call on a half-built node and twice. When the slot no longer belongs to this
 * state dir (another test bed's `up` swept it after this one's holder died, and may have claimed it since),
 * only this test bed's own processes are stopped: the slot's resources are someone else's now.
 */
export async function stopNode(
  net: NodeNetwork,
  processes: RunningProcess[],
  stateDir: string,
): Promise<void> {
  if (readOwner(net.slot)?.stateDir !== stateDir) {
    for (const p of processes) {
      if (
        ["node-holder", "containerd", "kubelet", "kube-proxy", "kube-network-policies"].includes(p.name) &&
        isAlive(p.pid)
      ) {
        try {
          process.kill(p.pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
    }
    return;
  }
  // while this process tears the node down, its slot is not dead: no other `up` sweeps it (and then claims
  // it and builds its own veth and cgroups while this cleanup is still removing the slot's)
  setOwners(net.slot, stateDir, [process.pid]);
  // the kubelet and kube-proxy first, so that neither reacts to containerd's end
  for (const name of ["kube-proxy", "kubelet"]) {
    const p = processes.find((q) => q.name === name);
    if (p && isAlive(p.pid)) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  }
  await cleanupSlot(net);
  releaseSlot(net.slot);
}

/** kube-network-policies as the test bed builds it (build/go-components.sh netpol), keyed like the build. */
export function networkPolicyBinary(): string {
  const hash = createHash("sha256")
    .update(readFileSync(join(TESTBED_DIR, "node", "netpol-nfqueue.go")))
    .digest("hex")
    .slice(0, 12);
  return join(
    cacheDir(),
    `kube-network-policies-v${versions().KUBE_NETWORK_POLICIES_VERSION}-${hash}`,
    "bin",
    "kube-network-policies",
  );
}

export interface NetworkPolicyEnforcer {
  pid: number;
  log: string;
  /** Stops it (SIGINT: it removes its nftables table on the way out) and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * NetworkPolicy enforced on the real node by sigs.k8s.io/kube-network-policies (a real implementation,
 * from the Go module proxy; node/netpol-nfqueue.go says what the build changes and why): it runs in the
 * node's namespaces and cgroup as kube-proxy does, puts the first packet of each new connection to a pod
 * that a policy selects through an NFQUEUE, and accepts or drops it by the policies. Not started by `up`:
 * the tests that need it start it (about a second, once built) and stop it, so every other suite keeps the
 * node it was written for. It needs only its API identity: a ServiceAccount with read access to pods,
 * namespaces and policies, whose token it reads as in a pod (rest.InClusterConfig, from the node's private
 * /run).
 */
export async function startNetworkPolicies(opts: {
  stateDir: string;
  kubeconfig: string;
  kubectl: string;
  holderPid: number;
}): Promise<NetworkPolicyEnforcer> {
  const { stateDir, kubeconfig, kubectl, holderPid } = opts;
  const started = Date.now();
  // built once per version (flock'd, cached): minutes cold, nothing when cached
  await sh(
    "bash",
    [join(TESTBED_DIR, "build", "go-components.sh"), "netpol"],
    "building kube-network-policies",
  );
  const bin = networkPolicyBinary();
  const rbac = [
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "kube-network-policies", namespace: "kube-system" },
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "kube-network-policies" },
      rules: [
        { apiGroups: [""], resources: ["pods", "namespaces", "nodes"], verbs: ["get", "list", "watch"] },
        { apiGroups: ["networking.k8s.io"], resources: ["networkpolicies"], verbs: ["get", "list", "watch"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "kube-network-policies" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "kube-network-policies" },
      subjects: [{ kind: "ServiceAccount", name: "kube-network-policies", namespace: "kube-system" }],
    },
  ];
  await kubectlJson(
    { kubectl } as GoBinaries,
    kubeconfig,
    ["apply", "-f", "-"],
    JSON.stringify({ apiVersion: "v1", kind: "List", items: rbac }),
  );
  const token = (
    await sh(kubectl, [
      "--kubeconfig",
      kubeconfig,
      "create",
      "token",
      "kube-network-policies",
      "-n",
      "kube-system",
      "--duration=48h",
    ])
  ).trim();
  const cfg = YAML.parse(readFileSync(kubeconfig, "utf8")) as {
    clusters: Array<{
      cluster: { server: string; "certificate-authority"?: string; "certificate-authority-data"?: string };
    }>;
  };
  const cluster = cfg.clusters[0]?.cluster;
  if (!cluster) throw new Error(`${kubeconfig} names no cluster`);
  const ca = cluster["certificate-authority-data"]
    ? Buffer.from(cluster["certificate-authority-data"], "base64")
    : readFileSync(resolve(kubeconfig, "..", cluster["certificate-authority"] ?? ""));
  const server = new URL(cluster.server);
  const sa = join(stateDir, "node", "kube-network-policies");
  mkdirSync(sa, { recursive: true });
  writeFileSync(join(sa, "token"), token, { mode: 0o600 });
  writeFileSync(join(sa, "ca.crt"), ca);
  writeFileSync(join(sa, "namespace"), "kube-system");
  // where rest.InClusterConfig looks, in the node's own /run (a tmpfs of its mount namespace)
  await nodeExec(holderPid, [
    "sh",
    "-ec",
    `mkdir -p /run/secrets/kubernetes.io && ln -sfn '${sa}' /run/secrets/kubernetes.io/serviceaccount`,
  ]);
  // the node's cgroup, as the holder has it (every hierarchy has the same path): `down` kills what is in it
  const cgroup = readFileSync(`/proc/${holderPid}/cgroup`, "utf8")
    .split("\n")
    .map((l) => l.split(":").slice(2).join(":"))
    .find((p) => p.endsWith("/node"));
  if (!cgroup) throw new Error(`the node holder ${holderPid} is not in the node's cgroup`);
  const procs = cgroupMounts().map((m) => `'${join(m, cgroup, "cgroup.procs")}'`);
  const proc = startProcess(
    {
      name: "kube-network-policies",
      command: "sh",
      args: [
        "-c",
        `for f in ${procs.join(" ")}; do echo $$ > "$f"; done; exec nsenter -t ${holderPid} -n -m -- "$@"`,
        "sh",
        bin,
        `--hostname-override=${REAL_NODE}`,
        // no NRI in the node's containerd: pod IPs come from the API server
        "--disable-nri",
        // a packet queued while it is not running passes (a test that stops it leaves no node that drops)
        "--fail-open",
        // this kernel (>= 6.12) has the conntrack fix that the DNS workaround is for
        "--netfilter-bug-1766-fix=false",
        "--metrics-bind-address=127.0.0.1:9080",
        "--v=2",
      ],
      env: {
        KUBERNETES_SERVICE_HOST: server.hostname,
        KUBERNETES_SERVICE_PORT: server.port || "443",
      },
    },
    stateDir,
  );
  await waitUntil(
    "kube-network-policies (its nftables rules in place)",
    async () => /Syncing nftables rules/.test(readFileSync(proc.log, "utf8")),
    { timeoutMs: 60_000, proc, intervalMs: 100 },
  );
  // its first sync has flushed: give it the moment between its log line and the netlink batch
  await sleep(500);
  // (not "failed to connect to NRI service": it tries NRI first and goes on without it)
  const failed = /can not start nftables|failed to (add|create|delete)|netlink receive|error syncing/i.exec(
    readFileSync(proc.log, "utf8"),
  );
  if (failed) {
    // not left running: nothing else would stop it before `down`
    process.kill(proc.pid, "SIGKILL");
    throw new Error(`kube-network-policies failed to set its rules: ${failed[0]} (see ${proc.log})`);
  }
  process.stderr.write(`[testbed] kube-network-policies on ${REAL_NODE} in ${Date.now() - started} ms\n`);
  return {
    pid: proc.pid,
    log: proc.log,
    async stop() {
      try {
        process.kill(proc.pid, "SIGINT");
      } catch {
        return;
      }
      // it waits 5 s after the signal for its cleanup
      const deadline = Date.now() + 10_000;
      while (isAlive(proc.pid) && Date.now() < deadline) await sleep(100);
      if (isAlive(proc.pid)) process.kill(proc.pid, "SIGKILL");
    },
  };
}
