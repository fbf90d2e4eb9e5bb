/**
 * scale: the operator on the test bed's real control plane with the Livy stand-in. 1000 LivySessions
 * applied at once (server-side apply from here, bounded concurrency), time until all are Ready, the
 * operator's API requests per session (counted inside the operator process from undici's diagnostics
 * channel, and kube-apiserver's apiserver_request_total for everything), reconcile errors, the operator's
 * peak RSS (VmHWM); then all idled out (idleTimeout 20s), then all deleted, checking that nothing leaked.
 * `--through ready` ends the run when all are Ready (with a long `--idle-timeout`, all Ready at once: the
 * operator's memory with every LivySession Ready), for 10,000 LivySessions, whose idle and deletion phases
 * would double a run that already takes most of an hour on 2 cores.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { LivySession } from "../src/api/index.ts";
import { CORE, type KubeList, type KubeObject, resourcePath } from "../src/kube/client.ts";
import { parseQuantity } from "../src/operator/pool.ts";
import { FAKE_NODE, fakeNodeManifest } from "../test/testbed/controlplane.ts";
import { type Args, type BenchBody, log } from "./lib/bench.ts";
import {
  applySession,
  BENCH_FIELD_MANAGER,
  boundedAll,
  createNamespace,
  type DeploymentLike,
  isIdle,
  isReady,
  leftovers,
  MANAGED,
  sessionPath,
  waitUntil,
  watchKind,
} from "./lib/kube.ts";
import {
  metricValue,
  Operator,
  type ReconcileTotals,
  type RequestCounts,
  reconcileTotals,
} from "./lib/operator.ts";
import { chartMemoryLimit } from "./lib/pod-memory.ts";
import { newestProfile, type ProfileSummary, summarizeProfile } from "./lib/profile.ts";
import { BENCH_DIR, fmt, type Goal, marginBelow, type Table } from "./lib/report.ts";
import { percentile, round } from "./lib/stats.ts";
import { componentCpu, machineBusyCpu, setControlPlaneLimits, testbed } from "./lib/testbed.ts";

interface PerSession {
  deployAvailable?: number;
  ready?: number;
  idle?: number;
  deleted?: number;
}

function diffCounts(a: RequestCounts, b: RequestCounts): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.counts)) {
    const d = v - (a.counts[k] ?? 0);
    if (d) out[k] = d;
  }
  return Object.fromEntries(Object.entries(out).sort((x, y) => y[1] - x[1]));
}

function diffTotals(a: ReconcileTotals, b: ReconcileTotals): ReconcileTotals {
  return {
    success: b.success - a.success,
    error: b.error - a.error,
    requeue: b.requeue - a.requeue,
    requeue_after: b.requeue_after - a.requeue_after,
  };
}

/** Mean latency per route between two snapshots. */
function latencyBetween(a: RequestCounts, b: RequestCounts): Record<string, { meanMs: number; n: number }> {
  const out: Record<string, { meanMs: number; n: number }> = {};
  for (const [k, v] of Object.entries(b.latency ?? {})) {
    const p = a.latency?.[k] ?? { sumMs: 0, n: 0, maxMs: 0 };
    const n = v.n - p.n;
    if (n > 0) out[k] = { meanMs: round((v.sumMs - p.sumMs) / n), n };
  }
  return out;
}

function sumWhere(c: Record<string, number>, prefix: string): number {
  return Object.entries(c).reduce((s, [k, v]) => (k.startsWith(prefix) ? s + v : s), 0);
}

/**
 * `--baseline REV`: the same scenario first on the operator of commit REV, then on HEAD's, in one run (one
 * test bed, minutes apart), with a table of the two side by side; the result is HEAD's with that table.
 */
export async function scale(args: Args): Promise<BenchBody> {
  const baseline = args.str("baseline", "");
  if (!baseline) return await scaleOnce(args);
  if (args.str("through", "lifecycle") !== "lifecycle")
    throw new Error("--baseline compares whole lifecycles: not with --through");
  log(`baseline first: the operator of ${baseline}`);
  const before = await scaleOnce(args, baseline);
  log("then HEAD's operator");
  const after = await scaleOnce(args);
  type R = {
    allReadyS: number;
    memory: { peakRssMiB: number; atAllReadyRssMiB: number; endRssMiB: number };
    operatorKubeRequestsPerSession: { createToReady: number; lifecycle: number };
    operatorCpuSeconds: { createToReady: number; total: number };
    reconcileMeanMs: number;
    livyRequestsPerSession: number;
  };
  const b = before.results as unknown as R;
  const a = after.results as unknown as R;
  const row = (what: string, x: number, y: number): Array<string | number> => [
    what,
    x,
    y,
    x ? round(y / x, 2) : "",
  ];
  const bc = String(before.params.operatorBuild).match(/commit (\w+)/)?.[1] ?? baseline;
  const ac = String(after.params.operatorBuild).match(/commit (\w+)/)?.[1] ?? "HEAD";
  after.tables.unshift({
    title: `Side by side in this run: the operator of ${bc} (baseline) and of ${ac}`,
    columns: ["figure", bc, ac, `ratio ${ac}/${bc}`],
    rows: [
      row("operator peak RSS, VmHWM (MiB)", b.memory.peakRssMiB, a.memory.peakRssMiB),
      row("operator RSS when all were Ready (MiB)", b.memory.atAllReadyRssMiB, a.memory.atAllReadyRssMiB),
      row("operator RSS at the end (MiB)", b.memory.endRssMiB, a.memory.endRssMiB),
      row(
        "operator API requests per session, create → Ready",
        b.operatorKubeRequestsPerSession.createToReady,
        a.operatorKubeRequestsPerSession.createToReady,
      ),
      row(
        "operator API requests per session, whole lifecycle",
        b.operatorKubeRequestsPerSession.lifecycle,
        a.operatorKubeRequestsPerSession.lifecycle,
      ),
      row(
        "operator Livy requests per session, whole lifecycle",
        b.livyRequestsPerSession,
        a.livyRequestsPerSession,
      ),
      row("operator CPU seconds, whole run", b.operatorCpuSeconds.total, a.operatorCpuSeconds.total),
      row("mean reconcile pass (ms)", b.reconcileMeanMs, a.reconcileMeanMs),
      row("all Ready after (s; load-dependent)", b.allReadyS, a.allReadyS),
    ],
  });
  after.results = { ...after.results, baseline: { params: before.params, results: before.results } };
  after.notes.push(
    `The baseline (${bc}) ran first in this run against the same test bed, then ${ac}: RSS and request counts do not depend on the machine's load; times do.`,
  );
  return after;
}

/** The extra Service range of a scale run: the test bed's own (a /21 per slot) holds 2048 Services. */
const SCALE_SERVICE_CIDR = "10.96.0.0/16";

/**
 * Routes the extra Service range to the real node's veth, as the test bed routes its own (test/testbed/node.ts),
 * so that no packet to one of its ClusterIPs can follow the default route off the machine; a route already
 * there (another run's) is left alone. The route goes with the veth when the test bed goes down.
 * Returns how to remove it.
 */
async function routeServiceCidrLocally(
  bed: Awaited<ReturnType<typeof testbed>>,
): Promise<() => Promise<void>> {
  const ip = (...a: string[]) => promisify(execFile)("ip", a).then((r) => r.stdout);
  if ((await ip("route", "show", SCALE_SERVICE_CIDR)).trim()) return async () => {};
  const node = bed.state.node;
  const via = node ? ["via", node.nodeIp, "dev", node.vethHost] : ["dev", "lo"];
  await ip("route", "add", SCALE_SERVICE_CIDR, ...via);
  log(`routed ${SCALE_SERVICE_CIDR} ${via.join(" ")}`);
  return async () => {
    await ip("route", "del", SCALE_SERVICE_CIDR).catch(() => "");
  };
}

async function scaleOnce(args: Args, rev?: string): Promise<BenchBody> {
  const n = args.num("sessions", 1000);
  const through = args.str("through", "lifecycle");
  if (through !== "lifecycle" && through !== "ready")
    throw new Error(`--through ${through}: lifecycle (create, Ready, idle, delete) or ready`);
  const applyConcurrency = args.num("apply-concurrency", 50);
  const concurrency = args.num("concurrency", 16);
  const idleTimeout = args.str("idle-timeout", "20s");
  const sessionPollMs = args.num("session-poll-ms", 5_000);
  const profile = args.bool("cpu-prof");
  const readyTimeoutS = args.num("ready-timeout-s", 600);
  const limits = args.str("control-plane", "raised") === "default" ? "default" : "raised";
  // the operator's pod limit (chart values), as the kubelet sets it: Node sizes V8's heap from it
  const memoryLimitArg = args.str("memory-limit", "chart");
  const memoryLimitBytes =
    memoryLimitArg === "none"
      ? undefined
      : memoryLimitArg === "chart"
        ? chartMemoryLimit()
        : parseQuantity(memoryLimitArg);
  const bed = await testbed();
  const controlPlaneFlags = await setControlPlaneLimits(bed, limits);
  await bed.standin.reset();
  // The test bed's Service range is a /21 (2048 ClusterIPs); one Service per LivySession needs more.
  // An extra ServiceCIDR (Kubernetes 1.33+) widens it without restarting the API server.
  await bed.kube.apply(
    "/apis/networking.k8s.io/v1/servicecidrs/bench-scale",
    {
      apiVersion: "networking.k8s.io/v1",
      kind: "ServiceCIDR",
      metadata: { name: "bench-scale" },
      spec: { cidrs: [SCALE_SERVICE_CIDR] },
    },
    BENCH_FIELD_MANAGER,
  );
  const unroute = await routeServiceCidrLocally(bed);
  // The test bed has one kwok node (2000 pods, 64 CPUs: 6400 of the 10m requests below). Above that, pods
  // would stay Pending and their LivySessions never Ready: add fake nodes (kwok manages every node with its
  // annotation) so that Kubernetes, not the node's capacity, is what the run meets.
  const nodes = Math.ceil((n * 1.2) / 2000);
  const extraNodes = Array.from(
    { length: Math.max(0, nodes - 1) },
    (_, i) => `${FAKE_NODE.replace(/-0$/, "")}-bench-${i + 1}`,
  );
  for (const name of extraNodes)
    await bed.kube.apply(`/api/v1/nodes/${name}`, JSON.parse(fakeNodeManifest(name)), BENCH_FIELD_MANAGER);
  if (extraNodes.length) log(`added ${extraNodes.length} kwok nodes for ${n} pods: ${extraNodes.join(", ")}`);
  const ns = await createNamespace(bed.kube, "bench-scale");
  const profDir = join(BENCH_DIR, "profiles", `scale-${Date.now()}`);
  const op = await Operator.start({
    kubeconfig: bed.state.kubeconfig,
    kubeOrigin: bed.state.apiserverUrl,
    serverUrlTemplate: bed.state.standinUrl,
    logDir: `${bed.state.stateDir}/logs`,
    name: "scale",
    concurrency,
    sessionPollIntervalMs: sessionPollMs,
    // kwok's node has 64 CPUs: the default request (500m) would leave most pods unschedulable
    extraArgs: ["--default-resources", JSON.stringify({ requests: { cpu: "10m", memory: "32Mi" } })],
    ...(profile ? { cpuProfDir: profDir } : {}),
    mode: args.str("operator", "js") === "ts" ? "ts" : "js",
    ...(rev ? { rev } : {}),
    ...(memoryLimitBytes !== undefined ? { memoryLimitBytes } : {}),
  });
  log(
    `operator pid ${op.pid}, namespace ${ns}, ${n} sessions, idleTimeout ${idleTimeout}, memory limit ${memoryLimitBytes === undefined ? "none" : `${memoryLimitBytes / 2 ** 20} MiB`}`,
  );

  const per = new Map<string, PerSession>();
  const rec = (name: string) => {
    let r = per.get(name);
    if (!r) {
      r = {};
      per.set(name, r);
    }
    return r;
  };
  const sessions = watchKind<LivySession>(bed.kube, sessionPath(ns), (type, o, at) => {
    const r = rec(o.metadata.name);
    if (type === "delete") r.deleted ??= at;
    else {
      if (r.ready === undefined && isReady(o)) r.ready = at;
      if (r.ready !== undefined && r.idle === undefined && isIdle(o)) r.idle = at;
    }
  });
  const deployments = watchKind<DeploymentLike>(
    bed.kube,
    resourcePath(CORE.deployments, ns),
    (_type, o, at) => {
      const owner = o.metadata?.labels?.["livy.dev/session"];
      if (owner && (o.status?.availableReplicas ?? 0) >= 1) rec(owner).deployAvailable ??= at;
    },
    MANAGED,
  );
  await Promise.all([sessions.waitForSync(), deployments.waitForSync()]);

  /** [s since start, RSS MiB, V8 heap used MiB, heap total MiB, external MiB] every 2 s */
  const rss: Array<[number, number, number, number, number]> = [];
  const t0 = performance.now();
  const rssTimer = setInterval(() => {
    void (async () => {
      try {
        const text = await op.metrics();
        const mib = (name: string) => round(metricValue(text, name) / 2 ** 20);
        rss.push([
          round((performance.now() - t0) / 1000),
          round(op.memory().rssMiB),
          mib("nodejs_heap_size_used_bytes"),
          mib("nodejs_heap_size_total_bytes"),
          mib("nodejs_external_memory_bytes"),
        ]);
      } catch {
        // the process is gone
      }
    })();
  }, 2_000);
  const apiserverTotal = async () => {
    // /metrics is Prometheus text (the bench's KubeClient parses JSON): read it through kubectl
    const raw = await bed.kubectl(["get", "--raw", "/metrics"]);
    let sum = 0;
    for (const line of raw.split("\n"))
      if (line.startsWith("apiserver_request_total{")) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
    return sum;
  };

  const names = Array.from({ length: n }, (_, i) => `s${String(i).padStart(4, "0")}`);
  const spec = { kind: "pyspark", idleTimeout, startupTimeout: "10m" };
  const cpu0 = op.cpuSeconds();
  const comp0 = componentCpu(bed);
  comp0["whole machine (every process, anyone's)"] = machineBusyCpu();
  const c0 = await op.requests();
  const a0 = await apiserverTotal();
  const m0 = reconcileTotals(await op.metrics());

  // 1. create all at once
  log(`applying ${n} LivySessions (${applyConcurrency} at a time)`);
  const tApply = performance.now();
  const applyErrors = await boundedAll(names, applyConcurrency, async (name) => {
    await applySession(bed.kube, ns, name, spec);
  });
  const tApplied = performance.now();
  log(
    `applied in ${((tApplied - tApply) / 1000).toFixed(1)} s (${applyErrors.length} errors); waiting for Ready`,
  );
  let lastLog = 0;
  const allReady = await waitUntil(
    "all Ready",
    () => {
      const ready = names.filter((x) => per.get(x)?.ready !== undefined).length;
      if (performance.now() - lastLog > 10_000) {
        lastLog = performance.now();
        const avail = names.filter((x) => per.get(x)?.deployAvailable !== undefined).length;
        const m = op.memory();
        log(
          `${ready}/${n} Ready, ${avail} Deployments available, ${((performance.now() - tApply) / 1000).toFixed(0)} s; operator RSS ${m.rssMiB.toFixed(0)} MiB, peak ${m.peakRssMiB.toFixed(0)} MiB`,
        );
      }
      return ready === n;
    },
    readyTimeoutS * 1000,
    50,
  );
  const c1 = await op.requests();
  const a1 = await apiserverTotal();
  const cpuAtReady = op.cpuSeconds() - cpu0;
  const comp1 = componentCpu(bed);
  comp1["whole machine (every process, anyone's)"] = machineBusyCpu();
  const metricsAtReady = await op.metrics();
  const m1 = reconcileTotals(metricsAtReady);
  const meanOf = (name: string, labels: Record<string, string> = {}) =>
    (metricValue(metricsAtReady, `${name}_sum`, labels) /
      Math.max(1, metricValue(metricsAtReady, `${name}_count`, labels))) *
    1000;
  const reconcileMeanMs = meanOf("controller_runtime_reconcile_time_seconds");
  const queueWaitMeanMs = meanOf("workqueue_queue_duration_seconds");
  const reconcilesAtReady = metricValue(metricsAtReady, "controller_runtime_reconcile_time_seconds_count");
  const memReady = op.memory();
  const readyTimes = names.map((x) => per.get(x)?.ready).filter((v): v is number => v !== undefined);
  const availTimes = names
    .map((x) => per.get(x)?.deployAvailable)
    .filter((v): v is number => v !== undefined);
  const lastReadyS = (Math.max(...readyTimes) - tApply) / 1000;
  const lastAvailS = (Math.max(...availTimes) - tApply) / 1000;
  const lag = names
    .map((x) => {
      const r = per.get(x);
      return r?.ready !== undefined && r.deployAvailable !== undefined
        ? r.ready - r.deployAvailable
        : Number.NaN;
    })
    .filter(Number.isFinite);
  const standinAtReady = await bed.standin.sessionCount();
  log(
    `all Ready: ${allReady} after ${lastReadyS.toFixed(1)} s; operator RSS peak ${memReady.peakRssMiB.toFixed(0)} MiB`,
  );

  // 2. all idle out, then 3. all deleted (not with --through ready)
  const idleAndDelete = async () => {
    // 2. all idle out
    const tIdleStart = performance.now();
    const allIdle = await waitUntil(
      "all idle",
      () => names.every((x) => per.get(x)?.idle !== undefined),
      readyTimeoutS * 1000,
      100,
    );
    const idleTimes = names.map((x) => per.get(x)?.idle).filter((v): v is number => v !== undefined);
    const lastIdleS = (Math.max(...idleTimes) - tApply) / 1000;
    // what runs goes at an idle teardown; a parked LivySession keeps its Service and ConfigMap for the wake
    // until it is deleted (decide.ts removeServer; before ba85eb3 they went too: an older --baseline removes them)
    const serverGone = await waitUntil(
      "servers removed after idle",
      async () => {
        const l = await leftovers(bed.kube, ns);
        return l.deployments + l.pods === 0;
      },
      300_000,
      1_000,
    );
    const afterIdle = await leftovers(bed.kube, ns);
    const standinAfterIdle = await bed.standin.sessionCount();
    const tIdleDone = performance.now();
    const c2 = await op.requests();
    const a2 = await apiserverTotal();
    const m2 = reconcileTotals(await op.metrics());
    log(
      `all idle: ${allIdle} (${((tIdleDone - tIdleStart) / 1000).toFixed(1)} s); left ${JSON.stringify(afterIdle)}, stand-in sessions ${standinAfterIdle}`,
    );

    // 3. delete all
    const tDelete = performance.now();
    const deleteErrors = await boundedAll(names, applyConcurrency, async (name) => {
      await bed.kube.delete(sessionPath(ns, name));
    });
    const allDeleted = await waitUntil("all deleted", () => sessions.size === 0, 300_000, 100);
    const tDeleted = performance.now();
    await waitUntil(
      "garbage collected",
      async () => {
        const l = await leftovers(bed.kube, ns);
        return l.deployments + l.services + l.configMaps + l.pods + l.livySessions === 0;
      },
      // garbage collection of 1000 LivySessions' Services and ConfigMaps (kept while parked)
      300_000,
      1_000,
    );
    const left = await leftovers(bed.kube, ns);
    const rs = (
      await bed.kube.get<KubeList<KubeObject>>(
        resourcePath({ group: "apps", version: "v1", plural: "replicasets", namespaced: true }, ns),
        {
          query: { labelSelector: "livy.dev/session" },
        },
      )
    ).items.length;
    const standinLeft = await bed.standin.sessionCount();
    const c3 = await op.requests();
    const a3 = await apiserverTotal();
    const m3 = reconcileTotals(await op.metrics());
    return {
      allIdle,
      lastIdleS,
      serverGone,
      afterIdle,
      standinAfterIdle,
      idleS: (tIdleDone - tIdleStart) / 1000,
      c2,
      a2,
      m2,
      deleteErrors: deleteErrors.length,
      allDeleted,
      deleteS: (tDeleted - tDelete) / 1000,
      removedAfterIdleS: (tIdleDone - tApply) / 1000,
      left,
      rs,
      standinLeft,
      c3,
      a3,
      m3,
    };
  };
  const life = through === "lifecycle" ? await idleAndDelete() : null;
  const c3 = life?.c3 ?? c1;
  const a3 = life?.a3 ?? a1;
  const m3 = life?.m3 ?? m1;
  const mem = op.memory();
  const cpuTotal = op.cpuSeconds() - cpu0;
  const comp3 = componentCpu(bed);
  comp3["whole machine (every process, anyone's)"] = machineBusyCpu();
  clearInterval(rssTimer);
  await sessions.stop();
  await deployments.stop();
  const errorLines = readFileSync(op.log, "utf8")
    .split("\n")
    .filter((l) => l.includes('"reconcile failed"'))
    .map((l) => {
      try {
        const j = JSON.parse(l) as { err?: { message?: string } };
        return (j.err?.message ?? l).slice(0, 200);
      } catch {
        return l.slice(0, 200);
      }
    });
  const errorKinds: Record<string, number> = {};
  for (const e of errorLines) {
    const k = e.replace(/s\d{4}/g, "sNNNN").replace(/\d+/g, "N");
    errorKinds[k] = (errorKinds[k] ?? 0) + 1;
  }
  await op.stop();
  let prof: ProfileSummary | null = null;
  if (profile) {
    const file = newestProfile(profDir);
    if (file) prof = summarizeProfile(file);
  }
  await bed.kube.delete(`/api/v1/namespaces/${ns}`);
  if (!life) {
    // --through ready: the operator is gone, so nothing would remove the LivySessions' finalizers and the
    // namespace would stay Terminating; garbage collection removes the rest (not waited for)
    log(`removing ${n} LivySessions' finalizers so that the namespace goes`);
    await boundedAll(names, applyConcurrency, async (name) => {
      await bed.kube
        .mergePatch(sessionPath(ns, name), { metadata: { finalizers: null } })
        .catch(() => undefined);
    });
  }
  for (const name of extraNodes) await bed.kube.delete(`/api/v1/nodes/${name}`);
  await unroute();

  const create = diffCounts(c0, c1);
  const createLatency = latencyBetween(c0, c1);
  const idle = life ? diffCounts(c1, life.c2) : {};
  const del = life ? diffCounts(life.c2, c3) : {};
  const all = diffCounts(c0, c3);
  const kubeCreate = sumWhere(create, "kube ");
  const kubeAll = sumWhere(all, "kube ");
  const errs = m3.error - m0.error;
  const conflicts = m3.requeue - m0.requeue;
  const leaked = life
    ? life.left.deployments +
      life.left.services +
      life.left.configMaps +
      life.left.pods +
      life.left.livySessions +
      life.rs +
      life.standinLeft
    : Number.NaN;
  // a pass's CPU, whatever N: what the operator spends per reconcile while all start (issue 14: no per-pass
  // cost that grows with N)
  const passes = diffTotals(m0, m1);
  const cpuPerReconcileMs =
    (cpuAtReady * 1000) / Math.max(1, passes.success + passes.error + passes.requeue + passes.requeue_after);
  const readyLimitS = 60;
  // issue 14: 150 MiB at 1000 LivySessions, 600 MiB at 10,000
  const rssLimit = n > 1000 ? 600 : 150;
  const requestsLimit = 5;

  const goals: Goal[] = [
    {
      goal: `all ${n} Ready`,
      target: `within ${readyLimitS} s on ${n === 1000 ? "this" : "a"} 2-core machine`,
      measured: allReady ? `${fmt(lastReadyS)} s` : `not all Ready within ${readyTimeoutS} s`,
      met: allReady && lastReadyS <= readyLimitS,
      margin: marginBelow(allReady ? lastReadyS : Number.POSITIVE_INFINITY, readyLimitS, "s"),
    },
    {
      goal: "operator peak RSS",
      target: `≤ ${rssLimit} MiB`,
      measured: `${fmt(mem.peakRssMiB)} MiB (VmHWM)`,
      met: mem.peakRssMiB <= rssLimit,
      margin: marginBelow(mem.peakRssMiB, rssLimit, "MiB"),
    },
    life
      ? {
          goal: "operator API requests per LivySession lifecycle",
          target: `≤ ${requestsLimit}`,
          measured: `${round(kubeAll / n, 2)} (create → Ready ${round(kubeCreate / n, 2)})`,
          met: kubeAll / n <= requestsLimit,
          margin: marginBelow(kubeAll / n, requestsLimit, ""),
        }
      : {
          goal: "operator API requests per LivySession, create → Ready (--through ready: no idle, no deletion)",
          target: `≤ ${requestsLimit} for the whole lifecycle`,
          measured: `${round(kubeCreate / n, 2)}`,
          met: kubeCreate / n <= requestsLimit,
          margin: marginBelow(kubeCreate / n, requestsLimit, ""),
        },
    ...(life
      ? [
          {
            goal: "nothing leaked",
            target: "0 Deployments/Services/ConfigMaps/Pods/ReplicaSets, 0 LivySessions, 0 stand-in sessions",
            measured: `${leaked} (${JSON.stringify({ ...life.left, replicaSets: life.rs, standinSessions: life.standinLeft })})`,
            met: leaked === 0 && life.allDeleted,
            margin: leaked === 0 ? "none left" : `${leaked} left`,
          },
        ]
      : []),
    {
      goal: "reconcile errors",
      target: "0 other than resolved conflicts",
      measured: `${errs} errors, ${conflicts} conflicts (retried)`,
      met: errs === 0,
      margin: errs === 0 ? "none" : `${errs} errors: ${Object.keys(errorKinds).slice(0, 3).join("; ")}`,
    },
  ];
  const s = (v: number) => round(v / 1000);
  const tables: Table[] = [
    {
      title: `${n} LivySessions on the stand-in: timeline (seconds from the first apply)`,
      columns: ["event", "time (s)"],
      rows: [
        [`all ${n} applied (server-side apply, ${applyConcurrency} at a time)`, s(tApplied - tApply)],
        ["first Ready", s(Math.min(...readyTimes) - tApply)],
        ["50% Ready", s(percentile(readyTimes, 50) - tApply)],
        ["all Deployments available (Kubernetes: kcm, scheduler, kwok)", round(lastAvailS)],
        ["all Ready", round(lastReadyS)],
        ...(life
          ? [
              [`all idled out (idleTimeout ${idleTimeout})`, round(life.lastIdleS)],
              ["all Deployments and pods removed after idle", round(life.removedAfterIdleS)],
              ["all deleted (finalizers done), from the delete", round(life.deleteS)],
            ]
          : []),
      ],
    },
    {
      title: "Operator cost",
      columns: ["figure", "value"],
      rows: [
        [
          "Ready − Deployment available, per session: median / p99 (ms)",
          `${round(percentile(lag, 50))} / ${round(percentile(lag, 99))}`,
        ],
        ["operator API requests per session, create → all Ready", round(kubeCreate / n, 2)],
        ["operator API requests per session, whole lifecycle (create, idle, delete)", round(kubeAll / n, 2)],
        ["operator Livy requests per session, whole lifecycle", round(sumWhere(all, "livy ") / n, 2)],
        [
          "kube-apiserver requests from all clients per session (apiserver_request_total)",
          round((a3 - a0) / n, 2),
        ],
        [
          "reconciles: success / requeue_after / conflict / error",
          `${m3.success - m0.success} / ${m3.requeue_after - m0.requeue_after} / ${conflicts} / ${errs}`,
        ],
        [
          "operator peak RSS (VmHWM) / RSS at the end (MiB)",
          `${round(mem.peakRssMiB)} / ${round(mem.rssMiB)}`,
        ],
        ["operator RSS when all were Ready (MiB)", round(memReady.rssMiB)],
        [
          "operator CPU per reconcile pass, create → all Ready (ms; all CPU of the process / passes)",
          round(cpuPerReconcileMs, 3),
        ],
      ],
    },
    {
      title: "Operator requests by route (whole run)",
      columns: [
        "route",
        "create → Ready",
        "idle-out",
        "delete",
        "per session",
        "mean latency, create → Ready (ms)",
      ],
      rows: Object.keys(all).map((k) => [
        k,
        create[k] ?? 0,
        idle[k] ?? 0,
        del[k] ?? 0,
        round((all[k] ?? 0) / n, 2),
        createLatency[k]?.meanMs ?? "",
      ]),
    },
  ];
  const cpuRows: Array<Array<string | number>> = Object.keys(comp0).map((k) => [
    k,
    round((comp1[k] ?? 0) - (comp0[k] ?? 0)),
    round((comp3[k] ?? 0) - (comp0[k] ?? 0)),
  ]);
  cpuRows.push(["livy-operator", round(cpuAtReady), round(cpuTotal)]);
  cpuRows.sort((a, b) => Number(b[1]) - Number(a[1]));
  tables.push({
    title: `CPU seconds by process (2 cores = 2 CPU-seconds per second; create → all Ready took ${fmt(lastReadyS)} s)`,
    columns: ["process", "create → all Ready", "whole run"],
    rows: cpuRows,
  });
  if (prof) {
    tables.push({
      title: `CPU profile of the operator (node --cpu-prof): ${fmt(prof.busyS)} s busy of ${fmt(prof.wallS)} s; self time by file`,
      columns: ["file", "self ms", "% of busy"],
      rows: prof.byFile.slice(0, 15).map((f) => [f.file, f.selfMs, f.pct]),
    });
    tables.push({
      title: "CPU profile: inclusive time of the operator's own functions",
      columns: ["function", "where", "total ms", "% of busy"],
      rows: prof.inclusiveSrc.slice(0, 15).map((f) => [f.fn, f.where, f.totalMs, f.pct]),
    });
  }
  return {
    env: { python: bed.state.python, livyUrl: null },
    params: {
      sessions: n,
      applyConcurrency,
      operatorBuild:
        op.commit === "work tree"
          ? "the work tree's src/ through type stripping"
          : `commit ${op.commit}, compiled (tsc -p tsconfig.build.json), as the image runs it`,
      operator: `--concurrency ${concurrency} --session-poll-interval-ms ${sessionPollMs} --default-resources {"requests":{"cpu":"10m","memory":"32Mi"}}${profile ? " (node --cpu-prof)" : ""}`,
      spec,
      standin: "session start 300 ms",
      controlPlane: limits,
      controlPlaneExtraFlags: controlPlaneFlags,
      operatorMemoryLimit:
        memoryLimitBytes === undefined
          ? "none (--memory-limit none): V8's heap sized from the machine's memory"
          : `${memoryLimitBytes / 2 ** 20} MiB memory cgroup (${memoryLimitArg === "chart" ? "the chart's resources.limits.memory, as in its pod" : "--memory-limit"})`,
    },
    results: {
      allReady,
      allReadyS: round(lastReadyS),
      allDeploymentsAvailableS: round(lastAvailS),
      applySeconds: s(tApplied - tApply),
      applyErrors: applyErrors.length,
      createToReadyReconciles: reconcilesAtReady,
      operatorCpuSeconds: { createToReady: round(cpuAtReady), total: round(cpuTotal) },
      componentCpuSeconds: {
        createToReady: Object.fromEntries(
          Object.keys(comp0).map((k) => [k, round((comp1[k] ?? 0) - (comp0[k] ?? 0))]),
        ),
        total: Object.fromEntries(
          Object.keys(comp0).map((k) => [k, round((comp3[k] ?? 0) - (comp0[k] ?? 0))]),
        ),
      },
      reconcileMeanMs: round(reconcileMeanMs),
      queueWaitMeanMs: round(queueWaitMeanMs),
      readyMinusAvailableMs: {
        p50: round(percentile(lag, 50)),
        p90: round(percentile(lag, 90)),
        p99: round(percentile(lag, 99)),
      },
      through,
      operatorCpuPerReconcileMs: round(cpuPerReconcileMs, 3),
      allIdle: life?.allIdle ?? null,
      lastIdleS: life ? round(life.lastIdleS) : null,
      serversRemovedAfterIdle: life?.serverGone ?? null,
      afterIdle: life?.afterIdle ?? null,
      standinSessionsAtReady: standinAtReady,
      standinSessionsAfterIdle: life?.standinAfterIdle ?? null,
      deleteErrors: life?.deleteErrors ?? null,
      allDeleted: life?.allDeleted ?? null,
      deleteSeconds: life ? round(life.deleteS) : null,
      leftovers: life ? { ...life.left, replicaSets: life.rs, standinSessions: life.standinLeft } : null,
      operatorRequestLatencyCreateToReady: createLatency,
      operatorRequests: { createToReady: create, idleOut: idle, delete: del, total: all },
      operatorKubeRequestsPerSession: {
        createToReady: round(kubeCreate / n, 2),
        lifecycle: life ? round(kubeAll / n, 2) : null,
      },
      apiserverRequestsAllClients: {
        createToReady: a1 - a0,
        idleOut: life ? life.a2 - a1 : null,
        delete: life ? a3 - life.a2 : null,
      },
      reconcile: {
        createToReady: diffTotals(m0, m1),
        total: diffTotals(m0, m3),
        afterIdle: life?.m2 ?? null,
        errorKinds,
      },
      livyRequestsPerSession: round(sumWhere(all, "livy ") / n, 2),
      memory: {
        peakRssMiB: round(mem.peakRssMiB),
        endRssMiB: round(mem.rssMiB),
        atAllReadyRssMiB: round(memReady.rssMiB),
        rssTimeline: rss,
      },
      profile: prof,
    },
    goals,
    tables,
    notes: [
      "API requests are counted inside the operator process (a preloaded module subscribes to undici's diagnostics channel, bench/lib/count-requests.ts), so they are the operator's own; apiserver_request_total also counts kube-controller-manager, the scheduler, kwok and this benchmark.",
      "Each LivySession's Deployment gets 10m CPU / 32Mi requested (--default-resources): kwok's node offers 64 CPUs and 2000 pods; with the default 500m only 128 pods would fit.",
      ...(life
        ? []
        : [
            `--through ready: the run ended when all ${n} were Ready (idleTimeout ${idleTimeout}); no idle teardown and no deletion were measured, and the LivySessions' finalizers were removed after the operator stopped.`,
          ]),
      `The Ready-time clock starts at the first apply; applying ${n} objects itself took ${fmt((tApplied - tApply) / 1000)} s.`,
      ...(extraNodes.length
        ? [
            `${extraNodes.length} more kwok nodes were added for ${n} pods (${extraNodes.length + 1} in all, 2000 pods and 64 CPUs each).`,
          ]
        : []),
    ],
  };
}
