#!/usr/bin/env node
/**
 * `npm run bench -- testbed` (or `node bench/testbed.ts`): the test bed's own figures.
 * - cold build time of each component (recorded by the build scripts in the cache, `.build-seconds`)
 * - warm `up` time (everything cached) into a fresh state directory
 * - resident memory of each running component, and of real Livy with one idle pyspark session
 *   (the Livy server JVM plus the Spark driver JVM and the Python REPL it starts)
 * Prints a table and writes bench/results/testbed.json. Figures only: it asserts no time.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { cacheDir, REPO_ROOT, versions } from "../test/testbed/paths.ts";
import { down, up } from "../test/testbed/testbed.ts";

const v = versions();
const c = cacheDir();
const components: Array<[string, string]> = [
  [`kube-apiserver, controller-manager, scheduler, kubectl v${v.K8S_VERSION}`, `k8s-v${v.K8S_VERSION}`],
  [`etcd v${v.ETCD_VERSION}`, `etcd-v${v.ETCD_VERSION}`],
  [`kwok v${v.KWOK_VERSION}`, `kwok-v${v.KWOK_VERSION}`],
  [`helm v${v.HELM_VERSION}`, `helm-v${v.HELM_VERSION}`],
  [`pyspark ${v.SPARK_VERSION} venv (+ PyPI livy)`, `spark-venv-${v.SPARK_VERSION}`],
];
const builds = components.map(([name, dir]) => {
  const f = join(c, dir, ".build-seconds");
  return { component: name, coldBuildSeconds: existsSync(f) ? Number(readFileSync(f, "utf8").trim()) : null };
});

/** RSS in MB of a process and all its descendants. */
function treeRssMb(pid: number): number {
  const out = execFileSync("ps", ["-e", "-o", "pid=,ppid=,rss="], { encoding: "utf8" });
  const rows = out
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number, number]);
  const children = new Map<number, number[]>();
  for (const [p, pp] of rows) children.set(pp, [...(children.get(pp) ?? []), p]);
  const rss = new Map(rows.map(([p, , r]) => [p, r]));
  let total = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop() ?? 0;
    total += rss.get(p) ?? 0;
    stack.push(...(children.get(p) ?? []));
  }
  return Math.round(total / 1024);
}

const stateDir = mkdtempSync(join(tmpdir(), "bench-testbed-"));
const t0 = performance.now();
const state = await up(stateDir);
const upSeconds = (performance.now() - t0) / 1000;
const memory: Record<string, number> = {};
for (const p of state.processes) memory[p.name] = treeRssMb(p.pid);

let livyWithSession: { sessionStartSeconds: number; rssMb: number } | null = null;
if (state.livyUrl) {
  const livyPid = state.processes.find((p) => p.name === "livy")?.pid ?? 0;
  const t1 = performance.now();
  const res = await fetch(`${state.livyUrl}/sessions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-requested-by": "bench" },
    body: JSON.stringify({ kind: "pyspark" }),
  });
  const { id } = (await res.json()) as { id: number };
  for (;;) {
    const s = (await (await fetch(`${state.livyUrl}/sessions/${id}/state`)).json()) as { state: string };
    if (s.state === "idle") break;
    if (["dead", "error", "killed"].includes(s.state)) throw new Error(`Livy session ${id} ended ${s.state}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  livyWithSession = { sessionStartSeconds: (performance.now() - t1) / 1000, rssMb: treeRssMb(livyPid) };
}
await down(stateDir);

const controlPlane = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"].reduce(
  (a, n) => a + (memory[n] ?? 0),
  0,
);
const result = {
  machine: {
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    loadavg: loadavg(),
  },
  builds,
  warmUpSeconds: Number(upSeconds.toFixed(1)),
  memoryMb: { ...memory, controlPlaneTotal: controlPlane },
  livyWithOnePysparkSession: livyWithSession,
  at: new Date().toISOString(),
};
mkdirSync(join(REPO_ROOT, "bench", "results"), { recursive: true });
writeFileSync(join(REPO_ROOT, "bench", "results", "testbed.json"), `${JSON.stringify(result, null, 2)}\n`);

const rows: string[] = ["| component | cold build | RSS running |", "| --- | ---: | ---: |"];
for (const b of builds)
  rows.push(`| ${b.component} | ${b.coldBuildSeconds === null ? "n/a" : `${b.coldBuildSeconds} s`} | |`);
for (const [name, mb] of Object.entries(memory)) rows.push(`| ${name} (running) | | ${mb} MB |`);
rows.push(
  `| control plane total (etcd, apiserver, controller-manager, scheduler, kwok) | | ${controlPlane} MB |`,
);
if (livyWithSession) {
  rows.push(
    `| Livy server + Spark driver + Python REPL, one idle pyspark session | | ${livyWithSession.rssMb} MB |`,
  );
}
process.stdout.write(
  `${rows.join("\n")}\n\nwarm \`up\`: ${result.warmUpSeconds} s${livyWithSession ? `; pyspark session POST to idle: ${livyWithSession.sessionStartSeconds.toFixed(1)} s` : ""}; load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(" ")}\n`,
);
