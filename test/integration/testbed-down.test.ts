import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { testbed } from "../testbed/context.ts";
import { cgroupMounts, nodeExec, sweepDeadSlots } from "../testbed/node.ts";
import { stopProcess } from "../testbed/process.ts";
import { mentionsAny, readOwner, runDir } from "../testbed/slots.ts";
import { down, type TestbedState, up } from "../testbed/testbed.ts";
import { until } from "./harness.ts";

const run = promisify(execFile);

/** What a test bed could leave on the host, as comparable lines. */
interface HostSnapshot {
  links: string[];
  routes: string[];
  iptables: string[];
  mounts: string[];
  cgroups: string[];
  paths: string[];
  processes: string[];
}

async function snapshot(): Promise<HostSnapshot> {
  const lines = (s: string) => s.split("\n").filter((l) => l.trim() !== "");
  const links = lines((await run("ip", ["-o", "link", "show"])).stdout).map(
    // "7: lvtb1@if2: <...>" -> "lvtb1"
    (l) => l.split(":")[1]?.trim().split("@")[0] ?? l,
  );
  const routes = lines((await run("ip", ["route", "show"])).stdout);
  const iptables = lines((await run("iptables-save")).stdout).filter((l) => !l.startsWith("#"));
  const mounts = lines(readFileSync("/proc/self/mountinfo", "utf8")).map((l) => l.split(" ")[4] ?? l);
  const cgroups = cgroupMounts().flatMap((m) => readdirSync(m).map((e) => join(m, e)));
  const paths = [
    "/var/lib/kubelet",
    "/var/lib/cni",
    "/var/log/pods",
    "/var/log/containers",
    "/opt/containerd",
    "/run/containerd/s",
    "/etc/cni",
    "/etc/kubernetes",
  ].filter((p) => existsSync(p));
  const processes = readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .map((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").replaceAll("\0", " ");
      } catch {
        return "";
      }
    });
  return { links, routes, iptables, mounts, cgroups, paths, processes };
}

/**
 * A second test bed, beside the one this run uses (two test beds at once, as helpers and CI run them): up, its
 * node's rules and mounts confined to its own namespaces, then down, after which the host is as it was. Things
 * other test beds on the machine change meanwhile are told apart by this one's slot and state dir.
 */
describe("a second test bed, up and down", () => {
  const skipLivy = process.env.LIVY_TESTBED_SKIP_LIVY;
  const started: string[] = [];
  /** Brings up a test bed without real Livy (not what this tests) in a fresh temp dir; afterAll downs it. */
  const second = async (): Promise<{ state: TestbedState; stateDir: string }> => {
    const stateDir = mkdtempSync(join(tmpdir(), "livy-testbed-second-"));
    started.push(stateDir);
    process.env.LIVY_TESTBED_SKIP_LIVY = "1";
    try {
      return { state: await up(stateDir), stateDir };
    } finally {
      if (skipLivy === undefined) delete process.env.LIVY_TESTBED_SKIP_LIVY;
      else process.env.LIVY_TESTBED_SKIP_LIVY = skipLivy;
    }
  };

  afterAll(async () => {
    for (const d of started) if (existsSync(d)) await down(d).catch(() => undefined);
  });

  it("runs beside this run's test bed in a slot of its own, and down leaves the host as it found it", async () => {
    const before = await snapshot();
    const { state, stateDir } = await second();
    const node = state.node;
    if (!node) throw new Error("no real node");
    const mine = testbed().node;
    expect(node.hostIp).not.toBe(mine?.hostIp);
    expect(node.podCidr).not.toBe(mine?.podCidr);
    expect(node.serviceCidr).not.toBe(mine?.serviceCidr);
    expect(readOwner(node.slot)?.stateDir).toBe(stateDir);

    // kube-proxy's and CNI's rules and the pods' mounts are in the node's namespaces, not on the host
    const inside = await nodeExec(node.holderPid, ["iptables-save"]);
    expect(inside).toContain("KUBE-SERVICES");
    expect(inside).toContain(node.podCidr);
    const during = await snapshot();
    expect(during.iptables.filter((l) => l.includes(node.podCidr) || l.includes(node.serviceCidr))).toEqual(
      [],
    );
    expect(during.mounts.filter((m) => m.startsWith(stateDir))).toEqual([]);
    expect(during.links).toContain(node.vethHost);
    expect(during.routes.filter((r) => r.includes(node.vethHost)).length).toBeGreaterThanOrEqual(3);

    await down(stateDir);
    const after = await snapshot();
    const slotBits = [
      node.vethHost,
      node.podCidr,
      node.serviceCidr,
      node.linkCidr,
      node.hostIp,
      node.cgroupRoot,
    ];
    const ours = mentionsAny([...slotBits, stateDir]);
    expect(after.links.filter(ours), "veth").toEqual([]);
    expect(after.routes.filter(ours), "routes").toEqual([]);
    expect(after.iptables.filter(ours), "iptables rules").toEqual([]);
    expect(after.mounts.filter(ours), "mounts").toEqual([]);
    expect(after.cgroups.filter(ours), "cgroups").toEqual([]);
    expect(after.processes.filter(ours), "processes").toEqual([]);
    expect(after.paths, "paths the kubelet and containerd use by default").toEqual(before.paths);
    const kubeChains = (s: HostSnapshot) => s.iptables.filter((l) => /KUBE-|CNI-/.test(l)).length;
    expect(kubeChains(after), "KUBE-/CNI- rules on the host").toBe(kubeChains(before));
    expect(existsSync(join(runDir(), "slots", String(node.slot))), "the slot").toBe(false);
    expect(existsSync(stateDir), "the state dir").toBe(false);
  });

  it("is swept by the next up when its holder died without down", async () => {
    const { state, stateDir } = await second();
    const node = state.node;
    if (!node) throw new Error("no real node");
    const holder = state.processes.find((p) => p.name === "node-holder");
    if (!holder) throw new Error("no holder");
    await stopProcess(holder.pid, 0);
    await sweepDeadSlots(() => undefined);
    expect(existsSync(join(runDir(), "slots", String(node.slot)))).toBe(false);
    const links = (await run("ip", ["-o", "link", "show"])).stdout;
    expect(links).not.toContain(`${node.vethHost}@`);
    for (const m of cgroupMounts()) expect(existsSync(join(m, node.cgroupRoot))).toBe(false);
    for (const name of ["containerd", "kubelet", "kube-proxy"]) {
      const p = state.processes.find((q) => q.name === name);
      if (!p) throw new Error(`no ${name}`);
      await until(`${name} killed by the sweep`, async () => !existsSync(`/proc/${p.pid}`), 10_000);
    }
    // the rest of it (the control plane) goes with down, which leaves the slot, no longer its own, alone
    await down(stateDir);
    expect(existsSync(stateDir)).toBe(false);
  });
});
