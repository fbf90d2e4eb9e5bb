/**
 * The test bed a benchmark on the real node runs on (bench/realnode.ts, bench/spark-k8s.ts): the one at
 * --state-dir (running, with the images imported: `npm run testbed -- up --image ...`), else a fresh one with
 * both project images imported into its node, brought down (and its temp dir removed) after the body,
 * whatever the body did.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testbedCluster } from "../../test/e2e/cluster.ts";
import type { Cluster } from "../../test/e2e/product.ts";
import { projectImages } from "../../test/testbed/images.ts";
import { down, readState, type TestbedState, up } from "../../test/testbed/testbed.ts";

export async function onRealNode<T>(
  given: string,
  tmpPrefix: string,
  body: (cluster: Cluster) => Promise<T>,
): Promise<T> {
  let state: TestbedState | null = given ? readState(given) : null;
  if (given && !state) throw new Error(`--state-dir ${given}: no test bed there`);
  const owned = !state;
  const stateDir = given || mkdtempSync(join(tmpdir(), tmpPrefix));
  try {
    if (!state) {
      const images = await projectImages({ livy: true });
      if (!images.livy) throw new Error("no Livy server image (no Apache Livy release on this machine)");
      state = await up(stateDir, { nodeImages: [images.operator.tar, images.livy.tar] });
    }
    return await body(await testbedCluster(state));
  } finally {
    if (owned) await down(stateDir).catch(() => undefined);
  }
}
