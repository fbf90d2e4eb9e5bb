/**
 * A kind node image built from package registries only, cached by its inputs (docs/kind.md):
 *
 * - the root filesystem: Debian by debootstrap (the project's image toolkit, images.ts `debianBase`) with
 *   systemd, Debian's containerd, runc and CNI plugins, iptables and the tools kind's entrypoint uses;
 * - kind's base files (entrypoint, systemd units, containerd config) from the sigs.k8s.io/kind module at
 *   KIND_VERSION;
 * - kubelet, kubeadm, kubectl (K8S_VERSION, the test bed's builds and version stamp), crictl;
 * - the images kubeadm runs, each built from the test bed's binaries of the same versions: kube-apiserver,
 *   kube-controller-manager, kube-scheduler, kube-proxy (on a Debian rootfs with iptables), etcd
 *   (ETCD_VERSION), CoreDNS (COREDNS_VERSION, kubeadm's Corefile plugins), pause; they ride in the image
 *   as `docker save` archives and are imported into the node's containerd at boot, before the kubelet;
 * - a static ptp CNI in place of kindnetd (not on the Go module proxy);
 * - vm-compat.sh before kind's entrypoint: fixes for a Docker daemon that cannot run --privileged
 *   containers, each applied only when the node finds the problem (docs/kind.md).
 *
 * Every Go build is build/go-components.sh's (cached by version under the test bed's cache); every image is
 * images.ts `buildImage` (cached by a hash of its inputs, `docker save`d). A warm call hashes and returns.
 * etcd and CoreDNS are newer than kubeadm's defaults: kindConfig() names their tags (kubeadmConfigPatches).
 *
 *   node test/kind/node-image.ts            builds (or finds) the image, loads it into Docker under its
 *                                           content-addressed name (`local`), prints JSON
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type BuiltImage,
  buildImage,
  debianBase,
  ensureDocker,
  ensureLoaded,
  imagesCacheDir,
} from "../testbed/images.ts";
import { cacheDir, goBinaries, TESTBED_DIR, versions } from "../testbed/paths.ts";

const log = (msg: string) => process.stderr.write(`[kind-node] ${msg}\n`);
export const KIND_DIR = dirname(fileURLToPath(import.meta.url));

/** What the node's root filesystem holds beyond minbase: kind's base image's list, minus what no test here uses. */
const NODE_PACKAGES = [
  "systemd",
  "systemd-sysv",
  "dbus",
  "containerd",
  "runc",
  "containernetworking-plugins",
  "iptables",
  "nftables",
  "iproute2",
  "ethtool",
  "socat",
  "conntrack",
  "ebtables",
  "kmod",
  "ca-certificates",
  "mount",
  "procps",
  "libseccomp2",
  "bash",
  "curl",
  "jq",
  "pigz",
];
/** kube-proxy's image: iptables (and nft) for its rules, conntrack to clear stale entries. */
const PROXY_PACKAGES = ["iptables", "nftables", "conntrack", "kmod"];

export interface KindTools {
  kind: string;
  kubeadm: string;
  crictl: string;
  coredns: string;
  /** kind's images/base/files from its module. */
  baseFiles: string;
  dir: string;
}

function sha12(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex").slice(0, 12);
}

export function kindTools(): KindTools {
  const v = versions();
  const hash = sha12(readFileSync(join(KIND_DIR, "coredns.go")));
  const dir = join(cacheDir(), `kind-v${v.KIND_VERSION}-k8s-v${v.K8S_VERSION}-${hash}`);
  return {
    kind: join(dir, "bin", "kind"),
    kubeadm: join(dir, "bin", "kubeadm"),
    crictl: join(dir, "bin", "crictl"),
    coredns: join(dir, "bin", "coredns"),
    baseFiles: join(dir, "base-files"),
    dir,
  };
}

/** build/go-components.sh for the given components (each cached by version; cold: minutes each). */
export async function goBuild(components: string[]): Promise<void> {
  const script = join(TESTBED_DIR, "build", "go-components.sh");
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const p = execFile(
      "bash",
      [script, ...components],
      { maxBuffer: 256 << 20, timeout: 7_200_000 },
      (err) => (err ? reject(err) : resolve()),
    );
    p.stderr?.on("data", (d: Buffer) => {
      for (const line of d.toString().split("\n")) if (line.startsWith("[testbed-build]")) log(line);
    });
  });
  log(`go components ${components.join(",")} ready in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

/**
 * `dir`, filled once: by `fill` in a temp dir beside it, renamed into place. A failure leaves nothing behind;
 * another process that filled it first wins (the same inputs give the same content).
 */
function makeOnce(dir: string, fill: (tmp: string) => void): string {
  if (existsSync(join(dir, "Dockerfile"))) return dir;
  const tmp = `${dir}.${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    fill(tmp);
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(join(dir, "Dockerfile"))) throw err;
  }
  return dir;
}

/** A FROM-scratch (or FROM base) context holding one binary at /usr/local/bin; made once, atomically. */
export function binaryContext(name: string, tag: string, binary: string, wrap = false): string {
  const dir = join(imagesCacheDir(), "contexts", `kind-${name}-${tag}-${sha12(readFileSync(binary))}`);
  if (existsSync(join(dir, "Dockerfile"))) return dir;
  return makeOnce(dir, (tmp) => {
    mkdirSync(tmp, { recursive: true });
    copyFileSync(binary, join(tmp, basename(binary)));
    const bin = basename(binary);
    // kube-proxy's iptables: the variant (legacy or nft) the node uses, as the official image's iptables-wrapper
    // decides it: the one that already holds more rules
    const wrapper = `#!/bin/sh
l=$( (iptables-legacy-save; ip6tables-legacy-save) 2>/dev/null | grep -c '^-')
n=$( (iptables-nft-save; ip6tables-nft-save) 2>/dev/null | grep -c '^-')
if [ "$l" -ge "$n" ]; then m=legacy; else m=nft; fi
update-alternatives --set iptables /usr/sbin/iptables-$m >/dev/null
update-alternatives --set ip6tables /usr/sbin/ip6tables-$m >/dev/null
exec /usr/local/bin/${bin}.bin "$@"
`;
    if (wrap) writeFileSync(join(tmp, "wrapper.sh"), wrapper, { mode: 0o755 });
    writeFileSync(
      join(tmp, "Dockerfile"),
      wrap
        ? `ARG BASE_IMAGE\nFROM $BASE_IMAGE\nCOPY ${bin} /usr/local/bin/${bin}.bin\nCOPY wrapper.sh /usr/local/bin/${bin}\nENTRYPOINT ["/usr/local/bin/${bin}"]\n`
        : `FROM scratch\nENV PATH=/usr/local/bin:/bin\nCOPY ${bin} /usr/local/bin/${bin}\nENTRYPOINT ["/usr/local/bin/${bin}"]\n`,
    );
  });
}

export interface NodeImage {
  /** The tag in Docker (`kind create cluster --image`), distinct to this project. */
  ref: string;
  image: BuiltImage;
  /** The images inside, as kubeadm and containerd name them. */
  inner: Record<string, BuiltImage>;
  /** Tags kubeadm must be told (its defaults are older): see kindConfig(). */
  etcdTag: string;
  corednsTag: string;
  seconds: number;
}

export async function buildNodeImage(): Promise<NodeImage> {
  const started = Date.now();
  const v = versions();
  await goBuild(["k8s", "node", "etcd", "pause", "kind"]);
  const bins = goBinaries();
  const tools = kindTools();
  // A warm call must not hash a gigabyte of binaries and archives again (80 s at load 45): the inputs'
  // paths, sizes and mtimes, this recipe and our node files name the result of the last build from them.
  const inputs = [
    bins.kubelet,
    bins.kubectl,
    bins.kubeProxy,
    bins.kubeApiserver,
    bins.kubeControllerManager,
    bins.kubeScheduler,
    bins.etcd,
    bins.pause,
    tools.kubeadm,
    tools.crictl,
    tools.coredns,
    fileURLToPath(import.meta.url),
    ...readdirSync(join(KIND_DIR, "node")).map((f) => join(KIND_DIR, "node", f)),
  ];
  const fingerprint = sha12(
    JSON.stringify([
      v,
      NODE_PACKAGES,
      PROXY_PACKAGES,
      inputs.map((f) => {
        const st = statSync(f);
        return [f, st.size, st.mtimeMs];
      }),
    ]),
  );
  const stamp = join(imagesCacheDir(), `kind-node-stamp-${fingerprint}.json`);
  if (existsSync(stamp)) {
    const last = JSON.parse(readFileSync(stamp, "utf8")) as Omit<NodeImage, "seconds">;
    if (existsSync(last.image.tar) && Object.values(last.inner).every((i) => existsSync(i.tar)))
      return { ...last, image: { ...last.image, cached: true }, seconds: (Date.now() - started) / 1000 };
  }
  const k8s = `v${v.K8S_VERSION}`;
  const etcdTag = `${v.ETCD_VERSION}-0`;
  const corednsTag = `v${v.COREDNS_VERSION}`;
  const pauseRef = `registry.k8s.io/pause:livy-kind-${sha12(readFileSync(bins.pause))}`;
  const [nodeBase, proxyBase] = [
    await debianBase({ packages: NODE_PACKAGES }),
    await debianBase({ packages: PROXY_PACKAGES }),
  ];
  const specs: { key: string; ref: string; binary: string; wrap?: boolean }[] = [
    { key: "kube-apiserver", ref: `registry.k8s.io/kube-apiserver:${k8s}`, binary: bins.kubeApiserver },
    {
      key: "kube-controller-manager",
      ref: `registry.k8s.io/kube-controller-manager:${k8s}`,
      binary: bins.kubeControllerManager,
    },
    { key: "kube-scheduler", ref: `registry.k8s.io/kube-scheduler:${k8s}`, binary: bins.kubeScheduler },
    { key: "kube-proxy", ref: `registry.k8s.io/kube-proxy:${k8s}`, binary: bins.kubeProxy, wrap: true },
    { key: "etcd", ref: `registry.k8s.io/etcd:${etcdTag}`, binary: bins.etcd },
    { key: "coredns", ref: `registry.k8s.io/coredns/coredns:${corednsTag}`, binary: tools.coredns },
    { key: "pause", ref: pauseRef, binary: bins.pause },
  ];
  const inner: Record<string, BuiltImage> = {};
  for (const s of specs) {
    const tag = s.ref.split(":").pop() ?? "latest";
    inner[s.key] = await buildImage({
      name: `kind-${s.key}`,
      ref: s.ref,
      context: binaryContext(s.key, tag, s.binary, s.wrap),
      base: s.wrap ? proxyBase : undefined,
    });
  }
  const imagesKey = sha12(
    Object.values(inner)
      .map((i) => i.key)
      .join(","),
  );
  const context = nodeContext({ tools, bins, inner, imagesKey, pauseRef, k8s });
  const ref = `livy-operator-kind/node:${k8s}`;
  const image = await buildImage({ name: "kind-node", ref, context, base: nodeBase });
  writeFileSync(stamp, `${JSON.stringify({ ref, image, inner, etcdTag, corednsTag }, null, 2)}\n`);
  return { ref, image, inner, etcdTag, corednsTag, seconds: (Date.now() - started) / 1000 };
}

/** The node image's build context: kind's base files, ours, the binaries and the images; made once by key. */
function nodeContext(o: {
  tools: KindTools;
  bins: ReturnType<typeof goBinaries>;
  inner: Record<string, BuiltImage>;
  imagesKey: string;
  pauseRef: string;
  k8s: string;
}): string {
  const ours = ["vm-compat.sh", "import-images.sh", "static-cni.sh", "default-cni.yaml"].map((f) =>
    readFileSync(join(KIND_DIR, "node", f)),
  );
  const binaries = [o.bins.kubelet, o.tools.kubeadm, o.bins.kubectl, o.tools.crictl];
  const key = sha12(
    [
      o.tools.dir,
      o.imagesKey,
      o.pauseRef,
      DOCKERFILE,
      ...ours.map((b) => sha12(b)),
      ...binaries.map((b) => sha12(readFileSync(b))),
    ].join("\n"),
  );
  const dir = join(imagesCacheDir(), "contexts", `kind-node-${key}`);
  if (existsSync(join(dir, "Dockerfile"))) return dir;
  return makeOnce(dir, (tmp) => {
    const root = join(tmp, "rootfs");
    mkdirSync(root, { recursive: true });
    cpSync(o.tools.baseFiles, join(tmp, "base-files"), { recursive: true });
    const put = (path: string, from: string | Buffer, mode = 0o644) => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      if (typeof from === "string") copyFileSync(from, join(root, path));
      else writeFileSync(join(root, path), from);
      chmodSync(join(root, path), mode);
    };
    put("usr/bin/kubelet", o.bins.kubelet, 0o755);
    put("usr/bin/kubeadm", o.tools.kubeadm, 0o755);
    put("usr/bin/kubectl", o.bins.kubectl, 0o755);
    put("usr/local/bin/crictl", o.tools.crictl, 0o755);
    put("kind/bin/vm-compat.sh", join(KIND_DIR, "node", "vm-compat.sh"), 0o755);
    put("kind/bin/import-images.sh", join(KIND_DIR, "node", "import-images.sh"), 0o755);
    put("kind/bin/static-cni.sh", join(KIND_DIR, "node", "static-cni.sh"), 0o755);
    put("kind/manifests/default-cni.yaml", join(KIND_DIR, "node", "default-cni.yaml"));
    put("kind/version", Buffer.from(`${o.k8s}\n`));
    put("kind/images/KEY", Buffer.from(`${o.imagesKey}\n`));
    for (const [k, img] of Object.entries(o.inner)) put(`kind/images/${k}.tar`, img.tar);
    put(
      "etc/systemd/system/kind-import-images.service",
      Buffer.from(`[Unit]
Description=Import the node image's images into containerd (no registry: they ride in /kind/images)
After=containerd.service
Requires=containerd.service
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/kind/bin/import-images.sh

[Install]
WantedBy=multi-user.target
`),
    );
    put(
      "etc/systemd/system/kubelet.service.d/20-livy-kind.conf",
      Buffer.from(`# images first (they are imported at boot), the static pod network's config from the cluster's podSubnet
[Unit]
Wants=kind-import-images.service
After=kind-import-images.service
[Service]
ExecStartPre=/kind/bin/static-cni.sh
`),
    );
    writeFileSync(join(tmp, "Dockerfile"), DOCKERFILE.replace("@PAUSE@", o.pauseRef));
  });
}

// What kind's images/base/Dockerfile does to its Debian rootfs, on Debian's containerd 1.6 and runc (the
// CNI plugins from Debian's package, at /opt/cni/bin where kind's containerd config looks).
const DOCKERFILE = `ARG BASE_IMAGE
FROM $BASE_IMAGE
COPY base-files/ /
COPY rootfs/ /
RUN set -eux; \\
    chmod 755 /usr/local/bin/entrypoint /usr/local/bin/clean-install /kind /kind/bin /kind/bin/*; \\
    ln -sf /usr/bin/containerd /usr/local/bin/containerd; ln -sf /usr/bin/ctr /usr/local/bin/ctr; \\
    ln -sf /usr/bin/containerd-shim-runc-v2 /usr/local/bin/containerd-shim-runc-v2; \\
    mkdir -p /opt/cni/bin; for p in ptp host-local portmap loopback bridge; do ln -sf /usr/lib/cni/$p /opt/cni/bin/$p; done; \\
    ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \\
      | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json; \\
    sed -i 's#sandbox_image = .*#sandbox_image = "@PAUSE@"#' /etc/containerd/config.toml; \\
    find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete; \\
    rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*; \\
    echo "ReadKMsg=no" >> /etc/systemd/journald.conf; \\
    systemctl enable kubelet.service containerd.service undo-mount-hacks.service kind-import-images.service; \\
    systemctl mask systemd-binfmt.service; \\
    mkdir -p /etc/kubernetes/manifests; \\
    rm -rf /usr/share/doc /usr/share/man /var/cache/apt /var/lib/apt/lists/*
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/kind/bin/vm-compat.sh", "/sbin/init"]
`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.env.KIND_NODE_IMAGE) {
    log(`KIND_NODE_IMAGE=${process.env.KIND_NODE_IMAGE}: no node image is built here`);
    process.exit(0);
  }
  const n = await buildNodeImage();
  await ensureDocker();
  const local = await ensureLoaded(n.image);
  // only the content-addressed name (localRef) is tagged in Docker: `ref` would be moved by every other
  // checkout's build of another node image
  const mb = (b: number) => Math.round(b / 1e6);
  console.log(
    JSON.stringify(
      {
        ref: n.ref,
        local,
        cached: n.image.cached,
        seconds: Math.round(n.seconds),
        nodeImageMB: { unpacked: mb(n.image.sizeBytes), tar: mb(n.image.tarBytes) },
        inner: Object.fromEntries(
          Object.entries(n.inner).map(([k, i]) => [
            k,
            { ref: i.ref, unpackedMB: mb(i.sizeBytes), tarMB: mb(i.tarBytes) },
          ]),
        ),
      },
      null,
      2,
    ),
  );
}
