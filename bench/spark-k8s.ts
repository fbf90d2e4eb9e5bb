/**
 * spark-k8s: Spark's kubernetes mode against local mode on the test bed's real node, side by side in one
 * run (issue 13), the product as a user runs it (the chart installed with the images built here, 1
 * replica; test/e2e/product.ts). For each round, a LivySession in `local` mode and one in `kubernetes`
 * mode (order alternating between rounds, one at a time: the node's 2 cores are shared) are applied, and
 * timed by the benchmark's own clock from apply until the first result of the same statement,
 * `spark.range(10_000_000).repartition(4).count()`, sent from the host through the API server's service
 * proxy as a user's client does; then the same statement again on the warm session. Each kubernetes-mode
 * executor pod is timed from the moment the benchmark first saw it to its phase Running (its container
 * started, the image already on the node), polling the API server every 250 ms. Each session is deleted
 * before the next, and no executor pod may remain.
 * Options: --rounds N (default 2), --executors N (default 2: 1 core, 512m of heap, 100m CPU request each),
 * --state-dir DIR (a running test bed with the images imported; default: a fresh one, brought down after).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type LivySession, phaseOf } from "../src/api/index.ts";
import { connectKube, connectLivySession } from "../src/livy/kube.ts";
import { type Pod, Product } from "../test/e2e/product.ts";
import { type Args, type BenchBody, log } from "./lib/bench.ts";
import { onRealNode } from "./lib/realnode.ts";
import { median, round } from "./lib/stats.ts";

const STATEMENT = "spark.range(10_000_000).repartition(4).count()";
/** A cold start of a Livy server and its Spark on 2 shared cores under load. */
const START_MS = 20 * 60_000;

interface Round {
  mode: "local" | "kubernetes";
  round: number;
  readyS: number;
  firstResultS: number;
  warmStatementS: number;
  /** Executor pods: first seen → Running, seconds (kubernetes mode). */
  executorStartS: number[];
  /** Executor pods Running at once while the first statement ran. */
  executorsRunning: number;
}

export async function sparkK8s(args: Args): Promise<BenchBody> {
  const rounds = args.num("rounds", 2);
  const executors = args.num("executors", 2);
  const given = args.str("state-dir", "");
  return onRealNode(given, "bench-spark-k8s-", async (cluster) => {
    const p = new Product(cluster, (m) => log(m));
    const conn = await connectKube({ kubeconfig: cluster.kubeconfig });
    const ns = `bench-spark-${Date.now().toString(36)}`;
    try {
      await p.helmInstall({ replicas: 1 });
      await p.namespace(ns);
      const results: Round[] = [];
      for (let r = 1; r <= rounds; r++) {
        const modes = r % 2 === 1 ? (["local", "kubernetes"] as const) : (["kubernetes", "local"] as const);
        for (const mode of modes) {
          const name = `${mode === "local" ? "loc" : "k8s"}-${r}`;
          const spec = {
            kind: "pyspark",
            idleTimeout: "30m",
            startupTimeout: "30m",
            server: { resources: { requests: { cpu: "100m", memory: "1Gi" }, limits: { memory: "2Gi" } } },
            session: { driverMemory: "512m" },
            spark:
              mode === "local"
                ? { mode }
                : { mode, executors: { instances: executors, cores: 1, cpuRequest: "100m", memory: "512m" } },
          };
          log(`round ${r}: ${mode}`);
          // executor pods by the bench's clock: first seen, first Running
          const seen = new Map<string, { seen: number; running?: number }>();
          let maxRunning = 0;
          let polling = mode === "kubernetes";
          const poller = (async () => {
            while (polling) {
              const pods = await p.pods(ns, `livy.dev/executor-of=${name}`).catch(() => [] as Pod[]);
              const now = performance.now();
              let running = 0;
              for (const x of pods) {
                const e = seen.get(x.metadata.name) ?? { seen: now };
                if (x.status?.phase === "Running") {
                  running++;
                  e.running ??= now;
                }
                seen.set(x.metadata.name, e);
              }
              maxRunning = Math.max(maxRunning, running);
              await sleep(250);
            }
          })();
          const t0 = performance.now();
          let tReady = 0;
          let tFirst = 0;
          let warmMs = 0;
          try {
            await p.kubectl(
              ["apply", "-f", "-"],
              JSON.stringify({
                apiVersion: "livy.dev/v1alpha1",
                kind: "LivySession",
                metadata: { name, namespace: ns },
                spec,
              }),
            );
            await p.waitFor(
              ns,
              name,
              "Ready",
              (ls: LivySession) => phaseOf(ls) === "Ready",
              START_MS,
              (ls: LivySession) => phaseOf(ls) === "Failed",
            );
            tReady = performance.now();
            const { client, session } = await connectLivySession(conn.kube, ns, name, { timeoutMs: 60_000 });
            try {
              const first = await (await session.submit(STATEMENT, { timeoutMs: 15 * 60_000 })).result;
              tFirst = performance.now();
              if (first.text !== "10000000") throw new Error(`${name}: the statement answered ${first.text}`);
              const t1 = performance.now();
              await (await session.submit(STATEMENT, { timeoutMs: 15 * 60_000 })).result;
              warmMs = performance.now() - t1;
            } finally {
              await client.close();
            }
          } finally {
            polling = false;
            await poller;
          }
          results.push({
            mode,
            round: r,
            readyS: round((tReady - t0) / 1000, 1),
            firstResultS: round((tFirst - t0) / 1000, 1),
            warmStatementS: round(warmMs / 1000, 2),
            executorStartS: [...seen.values()]
              .filter((e) => e.running !== undefined)
              .map((e) => round(((e.running ?? 0) - e.seen) / 1000, 1)),
            executorsRunning: maxRunning,
          });
          log(`  ${JSON.stringify(results.at(-1))}`);
          await p.kubectl(["delete", "livysession", name, "-n", ns, "--timeout=300s"]);
          const deadline = Date.now() + 300_000;
          while ((await p.pods(ns, `livy.dev/executor-of=${name}`)).length) {
            if (Date.now() > deadline) throw new Error(`${name}: executor pods left 300 s after delete`);
            await sleep(500);
          }
        }
      }
      const of = (mode: Round["mode"]) => results.filter((x) => x.mode === mode);
      const med = (mode: Round["mode"], k: "readyS" | "firstResultS" | "warmStatementS") =>
        round(median(of(mode).map((x) => x[k])), 2);
      const starts = of("kubernetes").flatMap((x) => x.executorStartS);
      const ratio = (k: "readyS" | "firstResultS" | "warmStatementS") =>
        round(med("kubernetes", k) / med("local", k), 2);
      return {
        params: {
          rounds,
          executors,
          statement: STATEMENT,
          executorSize: "1 core, 512m heap, 100m CPU request",
        },
        results: { rounds: results, executorStartS: starts },
        goals: [],
        tables: [
          {
            title: `Apply → first result of \`${STATEMENT}\`, median of ${rounds} (seconds)`,
            columns: ["step", "local", "kubernetes", "kubernetes / local"],
            rows: [
              ["apply → Ready", med("local", "readyS"), med("kubernetes", "readyS"), ratio("readyS")],
              [
                "apply → first result",
                med("local", "firstResultS"),
                med("kubernetes", "firstResultS"),
                ratio("firstResultS"),
              ],
              [
                "the statement again, warm",
                med("local", "warmStatementS"),
                med("kubernetes", "warmStatementS"),
                ratio("warmStatementS"),
              ],
            ],
          },
          {
            title: `Executor pods (${executors} a session): first seen → Running, seconds`,
            columns: ["pods", "median", "min", "max"],
            rows: [
              [
                starts.length,
                round(median(starts), 1),
                round(Math.min(...starts), 1),
                round(Math.max(...starts), 1),
              ],
            ],
          },
          {
            title: "Every run",
            columns: [
              "round",
              "mode",
              "Ready s",
              "first result s",
              "warm s",
              "executor start s",
              "executors Running",
            ],
            rows: results.map((x) => [
              x.round,
              x.mode,
              x.readyS,
              x.firstResultS,
              x.warmStatementS,
              x.executorStartS.join(", ") || "-",
              x.executorsRunning,
            ]),
          },
        ],
        notes: [
          "One session at a time on the real node (2 cores shared with the machine's other work); the Livy pod asks 100m CPU and 1Gi, executors 100m CPU and 512m of heap.",
          "Executor start is polled every 250 ms through the API server: first seen is within 250 ms of creation, Running is when the kubelet reported the container started (image already on the node).",
          "In kubernetes mode the session is Ready only once the driver has its executors registered (Spark waits up to 30 s for 80% of them), so apply → Ready includes the executors' start.",
        ],
      };
    } finally {
      await p.kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
      await p.helmUninstall().catch(() => undefined);
      await conn.close();
      await p.close();
    }
  });
}
