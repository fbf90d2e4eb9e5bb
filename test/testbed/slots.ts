/**
 * Slots: several test beds run at once on one machine (helpers, CI), each with a real node in its own
 * network namespace. A slot is a small integer k, claimed atomically (mkdir) under /run/livy-testbed/slots;
 * it fixes every address and name the test bed puts on the host, so that none collides with another test
 * bed's, with kwok's pod range (10.244.0.0/16) or with Docker's (172.17.0.0/16):
 *
 *   link      10.247.k.0/24   host side of the veth 10.247.k.1 (the API server binds and advertises it),
 *                             node side 10.247.k.2 (the kubelet's InternalIP)
 *   pods      10.245.k.0/24   the node's CNI bridge (gateway 10.245.k.1) and host-local range
 *   Services  10.246.8k.0/21  `kubernetes` = .1, cluster DNS = .10
 *   veth      lvtb<k> on the host; cgroupRoot /livy-testbed-<k> in every cgroup hierarchy
 *
 * Everything the test bed owns lies inside 10.244.0.0/14. /run is a tmpfs: a reboot, which ends every test
 * bed, also forgets every claim.
 */
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";

export const MAX_SLOTS = 32;

export function runDir(): string {
  return process.env.LIVY_TESTBED_RUN_DIR ?? "/run/livy-testbed";
}

const slotsDir = () => join(runDir(), "slots");

export interface NodeNetwork {
  slot: number;
  /** Host side of the veth: the API server's bind and advertise address. */
  hostIp: string;
  /** Node side of the veth, inside the node's network namespace: the kubelet's InternalIP. */
  nodeIp: string;
  linkCidr: string;
  podCidr: string;
  serviceCidr: string;
  /** ClusterIP of the `kubernetes` Service (first of the Service range). */
  kubernetesServiceIp: string;
  /** ClusterIP of the cluster DNS Service (`.10` of the Service range). */
  dnsServiceIp: string;
  /** Host-side name of the veth pair. */
  vethHost: string;
  /** The kubelet's cgroupRoot; the node's daemons run in `<cgroupRoot>/node`. */
  cgroupRoot: string;
}

/**
 * Whether a line names one of `tokens` as a whole: not as the start of a longer name. A plain substring
 * test matched the second test bed's cgroup root `/livy-testbed-1` inside this run's own state dir
 * `/tmp/livy-testbed-1LaiGG` (a fresh-clone CI failed so: every process of the run's own test bed counted
 * as left behind), and would match `lvtb1` in `lvtb10` or `10.247.1.2` in `10.247.1.25`.
 */
export function mentionsAny(tokens: string[]): (line: string) => boolean {
  const literal = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const bounded = tokens
    .filter((t) => t !== "")
    .map(
      (t) => `${/^[\w]/.test(t) ? "(?<![\\w.-])" : ""}${literal(t)}${/[\w]$/.test(t) ? "(?![\\w.-])" : ""}`,
    );
  const re = new RegExp(bounded.join("|"));
  return (line) => bounded.length > 0 && re.test(line);
}

export function networkFor(slot: number): NodeNetwork {
  if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_SLOTS) throw new Error(`no test bed slot ${slot}`);
  const svc = `10.246.${slot * 8}`;
  return {
    slot,
    hostIp: `10.247.${slot}.1`,
    nodeIp: `10.247.${slot}.2`,
    linkCidr: `10.247.${slot}.0/24`,
    podCidr: `10.245.${slot}.0/24`,
    serviceCidr: `${svc}.0/21`,
    kubernetesServiceIp: `${svc}.1`,
    dnsServiceIp: `${svc}.10`,
    vethHost: `lvtb${slot}`,
    cgroupRoot: `/livy-testbed-${slot}`,
  };
}

/** A process identified by pid and start time, so that a recycled pid is not taken for the owner. */
export interface ProcessId {
  pid: number;
  start: string;
}

export interface SlotOwner {
  stateDir: string;
  /** The slot is in use while any of these lives: the process that claimed it, then the node's holder. */
  owners: ProcessId[];
}

export function processId(pid: number): ProcessId | null {
  try {
    // field 22 of /proc/<pid>/stat (after the parenthesised command name, which may hold spaces)
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { pid, start: fields[19] ?? "" };
  } catch {
    return null;
  }
}

export function isRunning(p: ProcessId): boolean {
  return processId(p.pid)?.start === p.start;
}

function ownerFile(slot: number): string {
  return join(slotsDir(), String(slot), "owner.json");
}

export function readOwner(slot: number): SlotOwner | null {
  try {
    return JSON.parse(readFileSync(ownerFile(slot), "utf8")) as SlotOwner;
  } catch {
    return null;
  }
}

export function setOwners(slot: number, stateDir: string, pids: number[]): void {
  const owners = pids.map(processId).filter((p): p is ProcessId => p !== null);
  const tmp = `${ownerFile(slot)}.${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify({ stateDir, owners } satisfies SlotOwner)}\n`);
  renameSync(tmp, ownerFile(slot));
}

/**
 * Slots whose owners have all died (a test bed killed without `down`), taken over atomically: each is renamed
 * away, so that of two sweepers only one cleans it. Returns their numbers and owners, for the caller to remove
 * what they left on the host.
 */
export function takeDeadSlots(): { slot: number; owner: SlotOwner | null }[] {
  let entries: string[];
  try {
    entries = readdirSync(slotsDir());
  } catch {
    return [];
  }
  const dead: { slot: number; owner: SlotOwner | null }[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const slot = Number(e);
    const owner = readOwner(slot);
    // a slot claimed a moment ago has no owner file yet: its claimer writes it at once; give it a minute
    if (!owner) {
      try {
        const age = Date.now() - statSync(join(slotsDir(), e)).mtimeMs;
        if (age < 60_000) continue;
      } catch {
        continue;
      }
    } else if (owner.owners.some(isRunning)) continue;
    const grave = join(slotsDir(), `.dead-${e}-${process.pid}-${Date.now()}`);
    try {
      renameSync(join(slotsDir(), e), grave);
    } catch {
      continue; // another sweeper took it, or its owner released it
    }
    rmSync(grave, { recursive: true, force: true });
    dead.push({ slot, owner });
  }
  return dead;
}

/** Claims the first free slot for `stateDir` (owned by this process until setOwners names the holder). */
export function claimSlot(stateDir: string): NodeNetwork {
  for (let k = 0; k < MAX_SLOTS; k++) {
    try {
      mkdirSync(slotsDir(), { recursive: true });
      mkdirSync(join(slotsDir(), String(k)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EEXIST") continue;
      // the last test bed's down removed the directory between the two mkdirs: try this slot again
      if (code === "ENOENT") {
        k--;
        continue;
      }
      throw new Error(`cannot claim a test bed slot under ${slotsDir()}: ${String(err)}`);
    }
    setOwners(k, stateDir, [process.pid]);
    return networkFor(k);
  }
  throw new Error(
    `all ${MAX_SLOTS} test bed slots under ${slotsDir()} are in use (npm run testbed -- down the ones you no longer need)`,
  );
}

/** Gives the slot back; removes the run directory when no test bed is left. */
export function releaseSlot(slot: number): void {
  rmSync(join(slotsDir(), String(slot)), { recursive: true, force: true });
  for (const d of [slotsDir(), runDir()]) {
    try {
      rmdirSync(d);
    } catch {
      break; // not empty: another test bed is up
    }
  }
}
