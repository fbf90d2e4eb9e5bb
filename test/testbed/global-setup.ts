import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { down, readState, skipLivy, type TestbedState, up } from "./testbed.ts";

/**
 * Integration tests get a fresh control plane, Livy and stand-in per run, torn down even when tests fail.
 * LIVY_TESTBED_REUSE=1 (or =<state dir>) uses the one `npm run testbed -- up` started instead (quicker while
 * developing).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (skipLivy()) {
    process.stderr.write(
      "\n[testbed] LIVY_TESTBED_SKIP_LIVY=1: real Livy is NOT started; the real-Livy contract and e2e tests are SKIPPED.\n\n",
    );
  }
  let state: TestbedState;
  let owned = true;
  const reuseVar = process.env.LIVY_TESTBED_REUSE;
  const reuse = reuseVar ? readState(reuseVar === "1" ? undefined : reuseVar) : null;
  if (reuseVar && !reuse)
    throw new Error(`LIVY_TESTBED_REUSE=${reuseVar}: no running test bed there (npm run testbed -- up)`);
  if (reuse) {
    state = reuse;
    owned = false;
    process.stderr.write(`[testbed] reusing the running test bed in ${state.stateDir}\n`);
  } else {
    const stateDir = mkdtempSync(join(tmpdir(), "livy-testbed-"));
    state = await up(stateDir);
  }
  process.env.KUBECONFIG = state.kubeconfig;
  process.env.PATH = `${state.binDirs.join(":")}:${process.env.PATH ?? ""}`;
  project.provide("testbed", {
    stateDir: state.stateDir,
    kubeconfig: state.kubeconfig,
    binDirs: state.binDirs,
    livyUrl: state.livyUrl,
    standinUrl: state.standinUrl,
    python: state.python,
    sparkHome: state.sparkHome,
    node: state.node
      ? {
          name: state.node.name,
          nodeIp: state.node.nodeIp,
          hostIp: state.node.hostIp,
          podCidr: state.node.podCidr,
          serviceCidr: state.node.serviceCidr,
          kubernetesServiceIp: state.node.kubernetesServiceIp,
          dnsServiceIp: state.node.dnsServiceIp,
          containerdSock: state.node.containerdSock,
          holderPid: state.node.holderPid,
          images: {
            pause: state.node.images.pause,
            coredns: state.node.images.coredns,
            probe: state.node.images.probe,
          },
        }
      : null,
  });
  return async () => {
    if (owned) await down(state.stateDir);
  };
}
