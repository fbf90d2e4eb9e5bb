/**
 * Cluster providers for the end-to-end suite: what differs between clusters is only how the cluster is
 * provisioned and how the two images reach its nodes. The suite (suite.ts) runs the same body on either.
 *
 * - testbedCluster: the test bed's real node (kubelet, containerd, kube-proxy, CoreDNS; test/testbed/), the
 *   default in `make test`. The images are the test bed's builds of the repository's Dockerfiles
 *   (test/testbed/images.ts), imported into the node's containerd (a no-op when `up` imported them).
 * - kindCluster: a kind cluster (TEST_CLUSTER=kind) on a machine with Docker; kind, its node image and this
 *   machine's needs come from test/kind/kind.ts; the same images, loaded with `kind load docker-image`.
 *
 * Both name the images as the chart's defaults do (projectImageRefs), so `helm install` needs no image values,
 * exactly as for a user whose nodes can pull them.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { createKindCluster, type KindCluster, loadImages, prepareKind } from "../kind/kind.ts";
import type { TestbedInfo } from "../testbed/context.ts";
import { ensureLoaded, importImage, projectImageRefs, projectImages } from "../testbed/images.ts";
import type { Cluster } from "./product.ts";

const log = (msg: string) => process.stderr.write(`[e2e] ${msg}\n`);

/**
 * Why the real-node suite cannot run on this test bed, or null when it can: it needs the real node and both
 * images (LIVY_TESTBED_SKIP_IMAGES and LIVY_TESTBED_SKIP_LIVY opt out of them).
 */
export function testbedUnavailable(info: TestbedInfo | null): string | null {
  if (process.env.LIVY_TESTBED_SKIP_IMAGES === "1") return "LIVY_TESTBED_SKIP_IMAGES=1 (no images are built)";
  if (process.env.LIVY_TESTBED_SKIP_LIVY === "1")
    return `${process.env.LIVY_TESTBED_SKIP_REASON ?? "LIVY_TESTBED_SKIP_LIVY=1"} (no Livy server image)`;
  if (!info) return "no test bed";
  if (!info.node) return "the test bed has no real node";
  return null;
}

/** The test bed's real node with the project's images imported into its containerd. */
export async function testbedCluster(info: TestbedInfo): Promise<Cluster> {
  const node = info.node;
  if (!node) throw new Error("the test bed has no real node");
  const started = Date.now();
  // cached builds (`make test` builds them before the run: `npm run testbed -- build`), imported here into
  // the node's containerd (a no-op when an `up --image` imported them): only this suite needs them
  const images = await projectImages({ livy: true });
  if (!images.livy) throw new Error("no Livy server image: the test bed found no Apache Livy release");
  for (const image of [images.operator, images.livy]) {
    if (await importImage(image, { address: node.containerdSock }))
      log(`imported ${image.ref} into ${node.name}`);
  }
  log(`images on ${node.name} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return {
    description: `the test bed's real node ${node.name}`,
    kubeconfig: info.kubeconfig,
    binDirs: info.binDirs,
    images: { operator: images.operator.ref, livy: images.livy.ref },
    dispose: async () => undefined,
  };
}

function onPath(bin: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((d) => d !== "" && existsSync(join(d, bin)));
}

/** Why a kind cluster cannot be made here, or null. */
export async function kindUnavailable(): Promise<string | null> {
  const missing: string[] = [];
  try {
    const { getContainerRuntimeClient } = await import("testcontainers");
    await getContainerRuntimeClient(); // DOCKER_HOST, the socket, rootless, Podman...
  } catch (err) {
    missing.push(`no container engine (testcontainers: ${err instanceof Error ? err.message : String(err)})`);
  }
  if (!onPath("kind")) missing.push("kind is not on PATH");
  if (!onPath("docker")) missing.push("the docker CLI is not on PATH");
  return missing.length ? missing.join("; ") : null;
}

/**
 * A new kind cluster (test/kind/kind.ts: kind, its node image and what this machine's Docker needs, each
 * detected) with both images loaded by `kind load docker-image`. The images are the test bed toolkit's
 * builds of the repository's Dockerfiles (test/testbed/images.ts, as `make test` builds them; cached),
 * named in the node with the chart's default names. E2E_OPERATOR_IMAGE and E2E_LIVY_IMAGE use images already
 * built instead; E2E_KEEP_CLUSTER=1 keeps the cluster after the suite. `binDirs`: where kubectl and helm are.
 * Everything it makes (its temp dir, the cluster, the routes, the kind network when it made it) goes at
 * dispose, and on any failure before it returns.
 */
export async function kindCluster(binDirs: string[] = []): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), "kind-e2e-"));
  const name = `livy-e2e-${Date.now().toString(36)}`;
  let cluster: KindCluster | null = null;
  const dispose = async () => {
    if (process.env.E2E_KEEP_CLUSTER === "1" && cluster) {
      log(`kept kind cluster ${name} (kubeconfig ${cluster.kubeconfig}, dir ${dir})`);
      return;
    }
    await cluster?.delete();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const setup = await prepareKind(dir);
    const refs = projectImageRefs();
    const given: Record<"operator" | "livy", string | undefined> = {
      operator: process.env.E2E_OPERATOR_IMAGE,
      livy: process.env.E2E_LIVY_IMAGE,
    };
    // the images first (a build can take minutes: the cluster should not wait idle meanwhile), in Docker by
    // their content-addressed names (localRef), which no other checkout's build moves
    const started = Date.now();
    const built = given.operator && given.livy ? null : await projectImages({ livy: !given.livy });
    const local: Record<"operator" | "livy", string> = { operator: "", livy: "" };
    for (const which of ["operator", "livy"] as const) {
      const image = built?.[which];
      const prebuilt = given[which] ?? (image ? await ensureLoaded(image) : undefined);
      if (!prebuilt)
        throw new Error(
          `no ${which} image: the test bed found no Apache Livy release (or set E2E_LIVY_IMAGE)`,
        );
      local[which] = prebuilt;
    }
    log(`images ready in ${((Date.now() - started) / 1000).toFixed(0)} s: ${local.operator}, ${local.livy}`);
    cluster = await createKindCluster(setup, name, dir);
    const t = Date.now();
    await loadImages(setup, name, [
      { local: local.operator, ref: refs.operator },
      { local: local.livy, ref: refs.livy },
    ]);
    log(`kind load docker-image: ${((Date.now() - t) / 1000).toFixed(0)} s`);
    return {
      description: `kind cluster ${name} (${setup.notes.join("; ")})`,
      kubeconfig: cluster.kubeconfig,
      binDirs,
      images: refs,
      dispose,
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}
