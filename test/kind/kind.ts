/**
 * kind on this machine or a user's: the kind binary, the node image, and what this machine's Docker needs,
 * decided by looking, never assumed (docs/kind.md).
 *
 * - kind: `kind` on PATH when there is one, else built from the Go module proxy at KIND_VERSION (cached).
 * - the node image: KIND_NODE_IMAGE when set (e.g. kind's own kindest/node, where it can be pulled: then
 *   kind runs exactly as anywhere else), else the one node-image.ts builds here from package registries.
 * - a Docker daemon that cannot start --privileged containers (this VM: no CAP_SYS_RESOURCE) is found by
 *   trying one; only then does kind run with docker-wrapper.sh first on its PATH. On a normal Docker the
 *   probe succeeds and kind runs unwrapped.
 * - traffic stays on the machine: as root, the cluster's Service and pod ranges are routed to the kind
 *   network's bridge while the cluster lives (a ClusterIP packet that kube-proxy did not rewrite dies
 *   there instead of following the default route off the machine); removed at delete.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { stringify } from "yaml";
import { ensureDocker, ensureLoaded } from "../testbed/images.ts";
import { buildNodeImage, goBuild, KIND_DIR, kindTools } from "./node-image.ts";

const execFileP = promisify(execFile);
const log = (msg: string) => process.stderr.write(`[kind] ${msg}\n`);

/**
 * The cluster's ranges, routed locally while it lives: not kind's default pod range (10.244.0.0/16), which
 * lies in the test beds' 10.244.0.0/14 (test/testbed/slots.ts), so a kind cluster and test beds coexist.
 */
const POD_SUBNET = "10.240.0.0/16";
const SERVICE_SUBNET = "10.241.0.0/16";
const NETWORK = "kind";

export interface KindSetup {
  /** The kind binary. */
  kind: string;
  /** Environment for kind: PATH with the docker wrapper first when this Docker needs it. */
  env: NodeJS.ProcessEnv;
  /** `--image`; null: kind's default node image. */
  nodeImage: string | null;
  /** The cluster config (YAML) `kind create cluster --config` gets. */
  config: string;
  /** What was detected and applied, for the log and the report. */
  notes: string[];
}

function which(bin: string, path = process.env.PATH ?? ""): string | null {
  for (const d of path.split(delimiter)) if (d && existsSync(join(d, bin))) return join(d, bin);
  return null;
}

async function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 600_000) {
  try {
    return (await execFileP(cmd, args, { env, maxBuffer: 64 << 20, timeout: timeoutMs })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")}: ${(e.stderr || e.message).trim()}`);
  }
}

/**
 * Whether this Docker daemon refuses --privileged containers, by starting one (a second or two): the
 * refusal names the capabilities it could not apply. Any other failure is not this one (kind reports it).
 */
export async function privilegedRefused(image: string): Promise<string | null> {
  try {
    await run(
      "docker",
      ["run", "--rm", "--privileged", "--entrypoint", "/bin/true", image],
      process.env,
      120_000,
    );
    return null;
  } catch (err) {
    const msg = String(err);
    const m = /unable to apply caps[^\n:]*(: [^\n:]*)?|operation not permitted/i.exec(msg);
    return m ? m[0] : null;
  }
}

/**
 * kind's known issue "too many open files": every kubelet, API server and systemd in a node takes inotify
 * instances from the host user's (root's) 128 by default, shared with every test bed on the machine; a
 * kubelet that finds none left exits (seen here: a test bed's kubelet failed beside a kind cluster and three
 * test beds). kind's documentation raises the limits to these; as root this does it when they are lower (the
 * raised limits stay, as a host setting), otherwise it says so.
 */
const INOTIFY: Record<string, number> = { max_user_instances: 512, max_user_watches: 524288 };
export function inotifyLimits(): string[] {
  const notes: string[] = [];
  for (const [key, want] of Object.entries(INOTIFY)) {
    const file = `/proc/sys/fs/inotify/${key}`;
    if (!existsSync(file)) continue;
    const have = Number(readFileSync(file, "utf8").trim());
    if (!(have < want)) continue;
    if (process.getuid?.() === 0) {
      try {
        writeFileSync(file, `${want}\n`);
        notes.push(
          `fs.inotify.${key} raised from ${have} to ${want} (kind's known issue "too many open files")`,
        );
      } catch (err) {
        notes.push(`fs.inotify.${key} is ${have} and could not be raised: ${String(err)}`);
      }
    } else
      notes.push(
        `fs.inotify.${key} is ${have}: kind recommends ${want} (sysctl -w fs.inotify.${key}=${want})`,
      );
  }
  return notes;
}

/**
 * The kind binary, node image, config and environment for this machine (builds what is missing). `workDir`:
 * the caller's directory for what this run needs on disk (the docker wrapper's PATH entry); the caller
 * removes it with the cluster.
 */
export async function prepareKind(workDir: string): Promise<KindSetup> {
  const notes: string[] = [];
  await ensureDocker();
  let kind = which("kind");
  if (!kind) {
    await goBuild(["kind"]);
    kind = kindTools().kind;
    notes.push(`kind built from the Go module proxy (${kind})`);
  }
  // etcd without fsync, as the test bed runs it (controlplane.ts): at load average 50 on this machine's
  // disk, kind's one-shot CNI apply failed with "etcdserver: request timed out". A test cluster loses
  // nothing it needs by it.
  // (a map: kind 0.33 writes kubeadm's v1beta3 config for Kubernetes 1.34)
  const etcdArgs = { "unsafe-no-fsync": "true" };
  const patches: string[] = [];
  let nodeImage: string | null = process.env.KIND_NODE_IMAGE || null;
  if (nodeImage) notes.push(`node image ${nodeImage} (KIND_NODE_IMAGE)`);
  else {
    const n = await buildNodeImage();
    nodeImage = await ensureLoaded(n.image);
    notes.push(
      `node image ${nodeImage} built here (${n.image.cached ? "cached" : `built in ${n.seconds.toFixed(0)} s`})`,
    );
    // kubeadm v1.34 names older etcd and CoreDNS tags than the test bed's versions this image carries
    patches.push(
      stringify({
        kind: "ClusterConfiguration",
        etcd: { local: { imageTag: n.etcdTag, extraArgs: etcdArgs } },
        dns: { imageTag: n.corednsTag },
      }),
    );
  }
  // this host's kernel and capabilities, which the node's kubelet and kube-proxy share
  if (!existsSync("/sys/fs/cgroup/cgroup.controllers")) {
    patches.push(
      stringify({
        apiVersion: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        failCgroupV1: false,
      }),
    );
    notes.push("cgroup v1 host: the kubelet gets failCgroupV1: false");
  }
  notes.push(...inotifyLimits());
  const env: NodeJS.ProcessEnv = { ...process.env };
  const probeImage = nodeImage;
  let haveImage = await run("docker", ["image", "inspect", probeImage]).then(
    () => true,
    () => false,
  );
  if (!haveImage && process.env.KIND_NODE_IMAGE) {
    // kind's own image, not yet in Docker: pulled now, as `kind create cluster` would pull it, so that the
    // probe below can start it
    haveImage = await run("docker", ["pull", probeImage], process.env, 900_000).then(
      () => true,
      (e) => {
        log(`docker pull ${probeImage}: ${String(e)}`);
        return false;
      },
    );
  }
  if (!haveImage) notes.push(`${probeImage} is not in Docker: the --privileged probe did not run`);
  const refused = haveImage ? await privilegedRefused(probeImage) : null;
  if (refused) {
    const real = which("docker");
    if (!real) throw new Error("the docker CLI is not on PATH");
    const dir = join(workDir, "docker-wrapper");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "docker"), `#!/bin/sh\nexec ${join(KIND_DIR, "docker-wrapper.sh")} "$@"\n`, {
      mode: 0o755,
    });
    env.PATH = [dir, process.env.PATH ?? ""].join(delimiter);
    env.LIVY_KIND_REAL_DOCKER = real;
    notes.push(
      `this Docker refuses --privileged (${refused.trim()}): kind runs with test/kind/docker-wrapper.sh`,
    );
    // the wrapper withholds CAP_SYS_RESOURCE (what the daemon lacks): nothing in the node may lower an
    // oom_score_adj, and the kubelet and kube-proxy ask for -999 by default
    patches.push(
      stringify({
        apiVersion: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        oomScoreAdj: 0,
      }),
      stringify({
        apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
        kind: "KubeProxyConfiguration",
        oomScoreAdj: 0,
      }),
    );
  } else if (haveImage) notes.push("this Docker runs --privileged containers: kind runs unwrapped");
  else notes.push("kind runs unwrapped");
  if (!patches.some((p) => p.includes("ClusterConfiguration")))
    patches.unshift(stringify({ kind: "ClusterConfiguration", etcd: { local: { extraArgs: etcdArgs } } }));
  const config = stringify({
    kind: "Cluster",
    apiVersion: "kind.x-k8s.io/v1alpha4",
    networking: { podSubnet: POD_SUBNET, serviceSubnet: SERVICE_SUBNET },
    ...(patches.length ? { kubeadmConfigPatches: patches } : {}),
  });
  for (const n of notes) log(n);
  return { kind, env, nodeImage, config, notes };
}

export interface KindCluster {
  name: string;
  kubeconfig: string;
  /** Deletes the cluster, the routes it added and the kind network when this call made it; never throws. */
  delete: () => Promise<void>;
}

/**
 * `kind create cluster` with the setup's image and config, and local routes for its ranges (as root).
 * `dir`: the caller's directory for the config and the kubeconfig (the caller removes it).
 */
export async function createKindCluster(setup: KindSetup, name: string, dir: string): Promise<KindCluster> {
  const configFile = join(dir, "config.yaml");
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(configFile, setup.config);
  const routes: string[] = [];
  // kind makes its Docker network on the first create and leaves it after delete: made here, it goes too
  const networkBefore = await networkId();
  const del = async () => {
    await run(setup.kind, ["delete", "cluster", "--name", name], setup.env).catch((e) => log(String(e)));
    for (const r of routes) await run("ip", ["route", "del", r]).catch((e) => log(String(e)));
    if (!networkBefore && (await networkId())) {
      // refused while another cluster's node is on it: then it is still in use and stays
      await run("docker", ["network", "rm", NETWORK]).catch((e) => log(`kept: ${String(e)}`));
    }
  };
  const args = [
    "create",
    "cluster",
    "--name",
    name,
    "--kubeconfig",
    kubeconfig,
    "--config",
    configFile,
    "--wait",
    "300s",
  ];
  if (setup.nodeImage) args.push("--image", setup.nodeImage);
  const started = Date.now();
  try {
    await run(setup.kind, args, setup.env, 900_000);
    log(`kind cluster ${name} up in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    if (process.getuid?.() === 0 && which("ip")) {
      const id = (await networkId()) ?? "";
      const bridge = `br-${id.slice(0, 12)}`;
      const table = await run("ip", ["route"]);
      for (const r of [SERVICE_SUBNET, POD_SUBNET]) {
        if (table.includes(`${r} `)) continue; // someone's route already keeps it local or elsewhere: not ours to change
        await run("ip", ["route", "add", r, "dev", bridge]);
        routes.push(r);
      }
    }
  } catch (err) {
    await del();
    throw err;
  }
  return { name, kubeconfig, delete: del };
}

async function networkId(): Promise<string | null> {
  return run("docker", ["network", "inspect", NETWORK, "--format", "{{.Id}}"]).then(
    (out) => out.trim() || null,
    () => null,
  );
}

/**
 * `kind load docker-image` of images named by content (localRef: a tag no other build moves), then, in
 * each node's containerd, the names the chart uses by default (`ref`). The chart's names are never tagged
 * in Docker: another checkout's build may point them at its own image at any moment (between a `docker tag`
 * and the `docker save` inside `kind load`, the wrong image would be loaded).
 */
export async function loadImages(
  setup: KindSetup,
  name: string,
  images: { local: string; ref: string }[],
): Promise<void> {
  await run(
    setup.kind,
    ["load", "docker-image", ...images.map((i) => i.local), "--name", name],
    setup.env,
    1_200_000,
  );
  const nodes = (await run(setup.kind, ["get", "nodes", "--name", name], setup.env)).split("\n");
  for (const node of nodes.map((n) => n.trim()).filter(Boolean)) {
    for (const i of images) {
      await run("docker", [
        "exec",
        node,
        "ctr",
        "--namespace=k8s.io",
        "images",
        "tag",
        "--force",
        qualified(i.local),
        qualified(i.ref),
      ]);
    }
  }
}

/** An image name as containerd stores it: Docker's short names are docker.io's. */
export function qualified(ref: string): string {
  const first = ref.split("/")[0] ?? "";
  const domain = ref.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  if (domain) return ref;
  return ref.includes("/") ? `docker.io/${ref}` : `docker.io/library/${ref}`;
}
