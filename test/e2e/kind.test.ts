import { describe, expect, it } from "vitest";
import { kindCluster, kindUnavailable } from "./cluster.ts";
import { e2eSuite } from "./suite.ts";

/**
 * The end-to-end suite (suite.ts, the body the real-node suite runs) on kind: a new kind cluster, both images
 * built from this repository's Dockerfiles and loaded with `kind load docker-image`, then the same steps.
 *
 * It needs Docker and kind and runs only with TEST_CLUSTER=kind. Anywhere else it is reported as skipped,
 * with the reason in its name and on stderr; it is never counted as passed. Asking for it
 * (TEST_CLUSTER=kind) where Docker or kind is missing fails instead of skipping.
 *
 * Knobs: E2E_OPERATOR_IMAGE / E2E_LIVY_IMAGE use images already built instead of `docker build`;
 * E2E_KEEP_CLUSTER=1 keeps the cluster for inspection.
 */
const requested = process.env.TEST_CLUSTER === "kind";
const unavailable = await kindUnavailable();
const reason = !requested
  ? `TEST_CLUSTER is not "kind"${unavailable ? ` and ${unavailable}` : ""}`
  : unavailable;
if (reason) {
  console.warn(
    `\n[e2e] the kind end-to-end suite did NOT run: ${reason}. It is reported as skipped, not passed.\n`,
  );
}

describe.runIf(requested && unavailable !== null)("kind end-to-end prerequisites", () => {
  it(`TEST_CLUSTER=kind was asked for${unavailable ? `, but ${unavailable}` : ""}`, () => {
    expect.fail(`TEST_CLUSTER=kind needs Docker and kind: ${unavailable}`);
  });
});

if (reason) {
  describe.skip(`kind end-to-end [NOT RUN: ${reason}]`, () => {
    it("did not run", () => expect.fail(reason));
  });
} else {
  // kubectl and helm: the test bed's builds when the run has one, else whatever is on PATH
  const binDirs = await import("../testbed/context.ts").then((m) => m.testbed().binDirs).catch(() => []);
  e2eSuite("kind end-to-end", () => kindCluster(binDirs));
}
