import { describe, expect, it } from "vitest";
import { testbed } from "../testbed/context.ts";
import { testbedCluster, testbedUnavailable } from "./cluster.ts";
import { e2eSuite } from "./suite.ts";

/**
 * The end-to-end suite on the test bed's real node (the default in `make test`): the chart installed with
 * the images built here, the examples served by real Livy on Spark in pods. Where the test bed cannot run
 * it (images or Livy opted out), it is reported as NOT RUN with the reason, never as passed.
 */
const info = testbed();
const reason = testbedUnavailable(info);
if (reason) process.stderr.write(`\n[e2e] the real-node end-to-end suite did NOT run: ${reason}.\n\n`);

if (reason) {
  describe.skip(`end-to-end on the test bed's real node [NOT RUN: ${reason}]`, () => {
    it("did not run", () => expect.fail(reason));
  });
} else {
  e2eSuite("end-to-end on the test bed's real node", () => testbedCluster(info));
}
