import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resourcePath } from "../../src/kube/client.ts";
import { LivyClient } from "../../src/livy/client.ts";
import { LIVYSESSIONS } from "../../src/operator/reconciler.ts";
import {
  applySession,
  createNamespace,
  getSession,
  installCrd,
  isReady,
  kube,
  kubectl,
  type OperatorProcess,
  startOperator,
  until,
  waitFor,
} from "../integration/harness.ts";
import { testbed } from "../testbed/context.ts";

const livyUrl = (() => {
  try {
    return testbed().livyUrl;
  } catch {
    return null;
  }
})();
const reason = process.env.LIVY_TESTBED_SKIP_REASON ?? "LIVY_TESTBED_SKIP_LIVY=1";

/**
 * The whole path on real peers: the operator on the real control plane opens a real Livy session on real
 * Spark (local mode), and a statement sent to the session URL from status computes on Spark.
 */
describe.skipIf(!livyUrl)(`operator with real Livy on Spark${livyUrl ? "" : ` — NOT RUN: ${reason}`}`, () => {
  let op: OperatorProcess;
  let ns: string;
  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("e2e");
    op = await startOperator({
      name: "e2e",
      args: ["--server-url-template", livyUrl ?? "", "--livy-request-timeout-ms", "30000"],
    });
  });
  afterAll(async () => {
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=120s"]).catch(
      () => "",
    );
    await op?.stop();
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("applies a pyspark LivySession, waits for Ready, and runs spark.range(100).count() at the session URL from status", async () => {
    await applySession(ns, "spark", { kind: "pyspark", startupTimeout: "10m", idleTimeout: "30m" });
    // a Spark driver and a Python REPL start in the Livy session: 30-60 s on 2 idle cores, minutes under load
    const ls = await waitFor(ns, "spark", isReady, "Ready on real Livy", 600_000);
    const sessionUrl = ls.status?.sessionURL ?? "";
    expect(sessionUrl).toBe(`${livyUrl}/sessions/${ls.status?.livySessionId}`);
    const base = sessionUrl.replace(/\/sessions\/\d+$/, "");
    const client = new LivyClient({ baseUrl: base });
    try {
      const session = client.session(ls.status?.livySessionId ?? -1);
      const result = await session.run("spark.range(100).count()", { timeoutMs: 120_000 });
      expect(result.text).toBe("100");
    } finally {
      await client.close();
    }
    const id = ls.status?.livySessionId;
    await (await kube()).delete(resourcePath(LIVYSESSIONS, ns, "spark"));
    await until("LivySession gone", async () => (await getSession(ns, "spark")) === null, 60_000);
    const after = await fetch(`${livyUrl}/sessions/${id}`);
    // deleted by the finalizer: gone, or still listed as shutting down / killed while Livy retains it
    if (after.status === 200) {
      const body = (await after.json()) as { state: string };
      expect(["shutting_down", "killed", "dead"]).toContain(body.state);
    } else {
      expect(after.status).toBe(404);
    }
  }, 900_000);
});
