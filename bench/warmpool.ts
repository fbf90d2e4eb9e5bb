/**
 * warmpool: on the test bed's real node with real Livy on Spark in pods (the chart installed with the images
 * built here), a LivySession taken from a warm LivySessionPool vs a cold start, side by side in one run:
 * apply → Ready in status and apply → the first statement's result (spark.range(1000).count(), through the
 * API server's service proxy, as a user's client outside the cluster sends it). Each round takes one
 * server from the pool (the pool's refill runs meanwhile, as it does for users), then starts a LivySession
 * that no pool serves (its session conf differs), then waits for the pool to be warm again.
 * `--n` rounds (default 1); `--state-dir DIR` reuses a running test bed with both images imported.
 */
import { setTimeout as sleep } from "node:timers/promises";
import {
  GROUP,
  isReady,
  type LivySession,
  type LivySessionPool,
  POOL_PLURAL,
  phaseOf,
  VERSION,
} from "../src/api/index.ts";
import { CORE, type KubeList, type KubeObject, resourcePath } from "../src/kube/client.ts";
import { connectLivySession } from "../src/livy/kube.ts";
import { Product } from "../test/e2e/product.ts";
import { type Args, type BenchBody, log } from "./lib/bench.ts";
import { onRealNode } from "./lib/realnode.ts";
import { median, round } from "./lib/stats.ts";

const NS = "default";
const POOL = "bench-pool";
const LS = { group: GROUP, version: VERSION, plural: "livysessions", namespaced: true };
const POOLS = { group: GROUP, version: VERSION, plural: POOL_PLURAL, namespaced: true };
const TEMPLATE = { kind: "pyspark" };

interface Start {
  readyMs: number;
  resultMs: number;
  server?: string | undefined;
}

/** Applies a LivySession and times apply → Ready (polled every 20 ms) and apply → first result. */
async function start(
  p: Product,
  name: string,
  spec: Record<string, unknown>,
  timeoutMs: number,
): Promise<Start> {
  const k = await p.kube();
  const path = resourcePath(LS, NS, name);
  const t0 = performance.now();
  await k.apply(
    path,
    { apiVersion: `${GROUP}/${VERSION}`, kind: "LivySession", metadata: { name, namespace: NS }, spec },
    "bench-warmpool",
  );
  let ls: LivySession | null = null;
  const deadline = t0 + timeoutMs;
  for (;;) {
    ls = await k.getOrNull<LivySession>(path);
    if (ls && isReady(ls)) break;
    // Failed does not turn Ready by itself: say why instead of waiting out the timeout
    if (phaseOf(ls) === "Failed") throw new Error(`${name} Failed: ${ls?.status?.message ?? ""}`);
    if (performance.now() > deadline)
      throw new Error(`${name} not Ready within ${timeoutMs} ms: ${JSON.stringify(ls?.status?.conditions)}`);
    await sleep(20);
  }
  const readyMs = performance.now() - t0;
  const { client, session } = await connectLivySession(k, NS, name, { timeoutMs: 60_000 });
  try {
    const r = await session.run("spark.range(1000).count()", { timeoutMs: 600_000 });
    if (r.text !== "1000") throw new Error(`spark.range(1000).count() gave ${r.text}`);
  } finally {
    await client.close();
  }
  return { readyMs, resultMs: performance.now() - t0, server: ls.status?.server };
}

async function poolWarm(p: Product, want: number, timeoutMs: number): Promise<number> {
  const k = await p.kube();
  const t0 = performance.now();
  for (;;) {
    const pool = await k.getOrNull<LivySessionPool>(resourcePath(POOLS, NS, POOL));
    if ((pool?.status?.warm ?? 0) >= want) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`pool not warm within ${timeoutMs} ms: ${JSON.stringify(pool?.status)}`);
    await sleep(500);
  }
}

export async function warmpool(args: Args): Promise<BenchBody> {
  const n = args.num("n", 1);
  const given = args.str("state-dir", "");
  const timeoutMs = 30 * 60_000;
  return onRealNode(given, "bench-warmpool-", async (cluster) => {
    const p = new Product(cluster, (m) => log(m));
    const k = await p.kube();
    try {
      await p.helmInstall({ replicas: 1 });
      await k.apply(
        resourcePath(POOLS, NS, POOL),
        {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: "LivySessionPool",
          metadata: { name: POOL, namespace: NS },
          spec: { ...TEMPLATE, size: 1 },
        },
        "bench-warmpool",
      );
      log("filling the pool (one real Livy start)");
      const fillMs = await poolWarm(p, 1, timeoutMs);
      log(`pool warm after ${round(fillMs / 1000, 1)} s`);
      const warm: Start[] = [];
      const cold: Start[] = [];
      for (let i = 0; i < n; i++) {
        if (i > 0) await poolWarm(p, 1, timeoutMs);
        const w = await start(p, `warm-${i}`, { ...TEMPLATE, startupTimeout: "30m" }, timeoutMs);
        log(
          `round ${i + 1}: from the pool: Ready ${round(w.readyMs, 0)} ms, first result ${round(w.resultMs, 0)} ms (server ${w.server})`,
        );
        warm.push(w);
        // no pool serves this one: another session conf
        const c = await start(
          p,
          `cold-${i}`,
          { ...TEMPLATE, startupTimeout: "30m", session: { conf: { "spark.livy-operator.bench": "cold" } } },
          timeoutMs,
        );
        log(`round ${i + 1}: cold: Ready ${round(c.readyMs, 0)} ms, first result ${round(c.resultMs, 0)} ms`);
        cold.push(c);
        await k.delete(resourcePath(LS, NS, `warm-${i}`));
        await k.delete(resourcePath(LS, NS, `cold-${i}`));
        // The next round's cold start must find the node as this one did: the Livy pods just deleted keep
        // their CPU requests while they terminate, and a pod that does not fit fails its LivySession
        // (Unschedulable). Wait until only the pool's own servers are left.
        const t0 = performance.now();
        for (;;) {
          const pods = await k.get<KubeList<KubeObject>>(resourcePath(CORE.pods, NS));
          if (pods.items.length <= 1) break;
          if (performance.now() - t0 > 300_000)
            throw new Error(`round ${i + 1}'s pods not gone within 300 s: ${pods.items.length} left`);
          await sleep(500);
        }
      }
      const med = (xs: Start[], f: (s: Start) => number) => round(median(xs.map(f)), 0);
      const row = (what: string, f: (s: Start) => number) => {
        const w = med(warm, f);
        const c = med(cold, f);
        return [
          what,
          w,
          c,
          round(c / w, 1),
          ...warm.map((s) => round(f(s), 0)),
          ...cold.map((s) => round(f(s), 0)),
        ];
      };
      return {
        params: { n, stateDir: given || "fresh", pool: { size: 1, ...TEMPLATE } },
        results: { fillMs: round(fillMs, 0), warm, cold },
        goals: [
          {
            goal: "Ready after apply from a warm pool (real node, real Livy)",
            target: "≤ 1000 ms",
            measured: `${med(warm, (s) => s.readyMs)} ms (median of ${warm.length})`,
            met: med(warm, (s) => s.readyMs) <= 1000,
            margin: `${round(1000 / med(warm, (s) => s.readyMs), 1)}x the speed needed`,
          },
        ],
        tables: [
          {
            title: "apply → Ready and → first result: from a warm pool vs a cold start (medians, ms)",
            columns: [
              "",
              "warm pool",
              "cold start",
              "cold ÷ warm",
              ...warm.map((_, i) => `warm ${i + 1}`),
              ...cold.map((_, i) => `cold ${i + 1}`),
            ],
            rows: [
              row("apply → Ready", (s) => s.readyMs),
              row("apply → first result (spark.range(1000).count())", (s) => s.resultMs),
            ],
          },
        ],
        notes: [
          `The pool (size 1, kind pyspark) was filled once before the rounds: ${round(fillMs / 1000, 1)} s (a real Livy start plus the warm-up).`,
          "Ready is polled every 20 ms on the LivySession; the statement goes through the API server's service proxy.",
          "The cold LivySession differs from the pool's template only in a session conf key, so no pool serves it.",
        ],
      };
    } finally {
      await k.delete(resourcePath(POOLS, NS, POOL)).catch(() => undefined);
      await p
        .kubectl(["delete", "livysessions", "--all", "-n", NS, "--wait", "--timeout=180s"])
        .catch(() => "");
      await p.helmUninstall().catch(() => undefined);
      await p.close();
    }
  });
}
