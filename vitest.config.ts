import { defineConfig } from "vitest/config";

// Two projects: `unit` needs nothing but Node; `integration` runs against the test bed (a real
// kube-apiserver with kwok, real Livy on Spark, and the Livy stand-in), brought up once per run by the
// global setup and torn down even when tests fail.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          environment: "node",
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts", "test/e2e/**/*.test.ts", "test/faults/**/*.test.ts"],
          // the kind suite makes its own cluster: no test bed under it (project `kind`)
          exclude: ["test/e2e/kind.test.ts"],
          environment: "node",
          globalSetup: ["test/testbed/global-setup.ts"],
          testTimeout: 180_000,
          hookTimeout: 600_000,
          // the suites share one control plane and one Livy: run files one after another
          fileParallelism: false,
        },
      },
      {
        test: {
          // the end-to-end suite on a kind cluster it makes (docs/kind.md); NOT RUN unless TEST_CLUSTER=kind
          name: "kind",
          include: ["test/e2e/kind.test.ts"],
          environment: "node",
          globalSetup: ["test/kind/global-setup.ts"],
          testTimeout: 600_000,
          hookTimeout: 3_600_000,
        },
      },
    ],
  },
});
