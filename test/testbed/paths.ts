import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const TESTBED_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = join(TESTBED_DIR, "..", "..");

/** Versions of every component, from build/versions.env (the one place they are written). */
export function versions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(join(TESTBED_DIR, "build", "versions.env"), "utf8").split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m?.[1] && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

export function cacheDir(): string {
  return process.env.LIVY_TESTBED_CACHE ?? join(homedir(), ".cache", "livy-operator-testbed");
}

export interface GoBinaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubectl: string;
  kwok: string;
  kwokStages: string;
  helm: string;
  /** The real node: kubelet and kube-proxy (same version as the control plane), CoreDNS, the pause program. */
  kubelet: string;
  kubeProxy: string;
  coredns: string;
  pause: string;
  /** The test image's program (node/probe.go). */
  probe: string;
  binDirs: string[];
}

/** The cache key of a program in node/ (pause, probe, coredns): the hash of its source, as build/go-components.sh has it. */
export function nodeProgramHash(name: "pause" | "probe" | "coredns"): string {
  return createHash("sha256")
    .update(readFileSync(join(TESTBED_DIR, "node", `${name}.go`)))
    .digest("hex")
    .slice(0, 12);
}

export function goBinaries(): GoBinaries {
  const v = versions();
  const c = cacheDir();
  const k8s = join(c, `k8s-v${v.K8S_VERSION}`, "bin");
  const etcd = join(c, `etcd-v${v.ETCD_VERSION}`, "bin");
  const kwok = join(c, `kwok-v${v.KWOK_VERSION}`);
  const helm = join(c, `helm-v${v.HELM_VERSION}`, "bin");
  const node = join(c, `k8s-node-v${v.K8S_VERSION}`, "bin");
  return {
    etcd: join(etcd, "etcd"),
    kubeApiserver: join(k8s, "kube-apiserver"),
    kubeControllerManager: join(k8s, "kube-controller-manager"),
    kubeScheduler: join(k8s, "kube-scheduler"),
    kubectl: join(k8s, "kubectl"),
    kwok: join(kwok, "bin", "kwok"),
    kwokStages: join(kwok, "stages"),
    helm: join(helm, "helm"),
    kubelet: join(node, "kubelet"),
    kubeProxy: join(node, "kube-proxy"),
    coredns: join(c, `coredns-v${v.COREDNS_VERSION}-${nodeProgramHash("coredns")}`, "bin", "coredns"),
    pause: join(c, `pause-${nodeProgramHash("pause")}`, "bin", "pause"),
    probe: join(c, `probe-${nodeProgramHash("probe")}`, "bin", "probe"),
    binDirs: [k8s, helm, join(kwok, "bin"), etcd],
  };
}
