import { inject } from "vitest";

/** What the integration global setup (test/testbed/global-setup.ts) provides to every integration test. */
export interface TestbedInfo {
  /** Directory holding this run's state: logs, pids, certificates, kubeconfig. */
  stateDir: string;
  /** Admin kubeconfig of the test bed's real kube-apiserver. */
  kubeconfig: string;
  /** Directory with kubectl and helm (and the other built binaries). */
  binDirs: string[];
  /** Base URL of the real Apache Livy server (on real Spark, local mode); null when LIVY_TESTBED_SKIP_LIVY=1. */
  livyUrl: string | null;
  /** Base URL of the Livy protocol stand-in (test/standin/). Admin endpoints under /_standin/. */
  standinUrl: string;
  /** Python of the venv that holds pyspark (SPARK_HOME is its pyspark package) and the PyPI livy client. */
  python: string | null;
  sparkHome: string | null;
  /** The real node (kubelet, containerd, kube-proxy, CoreDNS in a network namespace of its own). */
  node: {
    name: string;
    /** The kubelet's InternalIP (node side of the veth); the host side is the API server's address. */
    nodeIp: string;
    hostIp: string;
    podCidr: string;
    serviceCidr: string;
    kubernetesServiceIp: string;
    dnsServiceIp: string;
    /** containerd's socket: `ctr --address <it> -n k8s.io images import <tar>` (or importImageIntoNode). */
    containerdSock: string;
    /** The process holding the node's namespaces: `nsenter -t <it> -n -m <command>` runs inside them. */
    holderPid: number;
    /** Images present on the node from the start (imagePullPolicy Never): pause, CoreDNS, the probe. */
    images: { pause: string; coredns: string; probe: string };
  } | null;
}

declare module "vitest" {
  export interface ProvidedContext {
    testbed: TestbedInfo;
  }
}

export function testbed(): TestbedInfo {
  return inject("testbed");
}
