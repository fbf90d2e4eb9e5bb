/**
 * The test bed's real node: what it costs and how fast it is.
 *   - `up` of a whole test bed (warm cache, no real Livy), split by phase from its own log, then `down`;
 *   - RSS of the node's daemons (kubelet, containerd, kube-proxy) and CoreDNS, after the node settled;
 *   - pod create → Ready for `--pods` pods one after another (image already on the node), and the same for
 *     `--pods` at once;
 *   - the cold build times recorded by the build (.build-seconds) of kubelet/kube-proxy and CoreDNS.
 * Options: --pods N (default 10), --settle-s S (default 20).
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { promisify } from "node:util";
import { cacheDir, goBinaries, versions } from "../test/testbed/paths.ts";
import { down, type TestbedState, up } from "../test/testbed/testbed.ts";
import { type Args, type BenchBody, log } from "./lib/bench.ts";
import { median, round } from "./lib/stats.ts";

const run = promisify(execFile);

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? "0");
  return round(kb / 1024, 1);
}

/** Pids of processes whose command line starts with `prefix` (CoreDNS runs in a container: found by argv). */
function pidsByArgv(prefix: string): number[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").replaceAll("\0", " ").startsWith(prefix);
      } catch {
        return false;
      }
    })
    .map(Number);
}

export async function node(args: Args): Promise<BenchBody> {
  const pods = args.num("pods", 10);
  const settleS = args.num("settle-s", 20);
  const stateDir = mkdtempSync(join(tmpdir(), "bench-node-"));
  const saved = process.env.LIVY_TESTBED_SKIP_LIVY;
  process.env.LIVY_TESTBED_SKIP_LIVY = "1";
  const kubectl = async (state: TestbedState, a: string[], input?: string) => {
    const p = run(goBinaries().kubectl, a, { env: { ...process.env, KUBECONFIG: state.kubeconfig } });
    if (input !== undefined) p.child.stdin?.end(input);
    return (await p).stdout;
  };
  let state: TestbedState | null = null;
  try {
    const t0 = Date.now();
    state = await up(stateDir);
    const upS = (Date.now() - t0) / 1000;
    log(`up in ${upS.toFixed(1)} s; settling ${settleS} s`);
    const node = state.node;
    if (!node) throw new Error("the test bed came up without a real node");
    await new Promise((r) => setTimeout(r, settleS * 1000));
    const byName = (n: string) => state?.processes.find((p) => p.name === n)?.pid ?? 0;
    const rss: Record<string, number> = {
      kubelet: rssMiB(byName("kubelet")),
      containerd: rssMiB(byName("containerd")),
      "kube-proxy": rssMiB(byName("kube-proxy")),
      coredns: pidsByArgv("/coredns -conf").map(rssMiB)[0] ?? 0,
      "containerd-shim (each)": median(pidsByArgv("/usr/bin/containerd-shim-runc-v2").map(rssMiB)),
    };

    const ns = `bench-node-${Date.now().toString(36)}`;
    await kubectl(state, ["create", "namespace", ns]);
    const pod = (name: string) =>
      JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace: ns },
        spec: {
          terminationGracePeriodSeconds: 0,
          containers: [
            {
              name: "probe",
              image: node.images.probe,
              imagePullPolicy: "Never",
              args: ["serve", ":8080"],
              readinessProbe: { httpGet: { path: "/", port: 8080 }, periodSeconds: 1 },
            },
          ],
        },
      });
    const sequential: number[] = [];
    for (let i = 0; i < pods; i++) {
      const t = Date.now();
      await kubectl(state, ["apply", "-f", "-"], pod(`seq-${i}`));
      await kubectl(state, ["wait", "-n", ns, "--for=condition=Ready", `pod/seq-${i}`, "--timeout=120s"]);
      sequential.push(Date.now() - t);
    }
    await kubectl(state, ["delete", "pods", "--all", "-n", ns, "--wait=true"]);
    const t1 = Date.now();
    await Promise.all(
      Array.from({ length: pods }, (_, i) =>
        kubectl(state as TestbedState, ["apply", "-f", "-"], pod(`par-${i}`)),
      ),
    );
    await kubectl(state, ["wait", "-n", ns, "--for=condition=Ready", "pods", "--all", "--timeout=300s"]);
    const parallelS = (Date.now() - t1) / 1000;

    const t2 = Date.now();
    await down(stateDir);
    state = null;
    const downS = (Date.now() - t2) / 1000;

    const v = versions();
    const buildSeconds = (dir: string) => {
      const f = join(cacheDir(), dir, ".build-seconds");
      return existsSync(f) ? Number(readFileSync(f, "utf8")) : null;
    };
    const builds = {
      [`kubelet, kube-proxy v${v.K8S_VERSION}`]: buildSeconds(`k8s-node-v${v.K8S_VERSION}`),
      [`CoreDNS v${v.COREDNS_VERSION} (the node's plugins)`]: buildSeconds(
        basename(dirname(dirname(goBinaries().coredns))),
      ),
      [`control plane v${v.K8S_VERSION} (for comparison)`]: buildSeconds(`k8s-v${v.K8S_VERSION}`),
    };
    const seqMedian = median(sequential);
    return {
      params: { pods, settleS },
      results: { upS, downS, rss, sequentialMs: sequential, parallelS, builds },
      goals: [],
      tables: [
        {
          title: "Test bed with a real node (warm cache, no real Livy)",
          columns: ["step", "seconds"],
          rows: [
            ["up (control plane, kwok, real node Ready, CoreDNS serving, stand-in)", round(upS, 1)],
            ["down (everything removed)", round(downS, 1)],
          ],
        },
        {
          title: `Memory after ${settleS} s (RSS, MiB)`,
          columns: ["process", "RSS MiB"],
          rows: Object.entries(rss).map(([k, m]) => [k, m]),
        },
        {
          title: "Pod create → Ready on the real node (image present, readiness probe every 1 s)",
          columns: ["how", "result"],
          rows: [
            [`${pods} one after another, median`, `${seqMedian} ms`],
            [
              `${pods} one after another, min / max`,
              `${Math.min(...sequential)} / ${Math.max(...sequential)} ms`,
            ],
            [`${pods} at once, all Ready`, `${round(parallelS, 1)} s`],
          ],
        },
        {
          title: "Cold build (.build-seconds, as recorded by the build)",
          columns: ["component", "seconds"],
          rows: Object.entries(builds).map(([k, s]) => [k, s ?? "not recorded"]),
        },
      ],
      notes: [
        "Readiness is polled by the kubelet every second, so create → Ready includes up to 1 s of probe period.",
        "The cold build times were taken under whatever load the machine had then (other builds in parallel).",
      ],
    };
  } finally {
    if (state) await down(stateDir).catch(() => undefined);
    if (saved === undefined) delete process.env.LIVY_TESTBED_SKIP_LIVY;
    else process.env.LIVY_TESTBED_SKIP_LIVY = saved;
  }
}
