/**
 * The operator's pod memory limit, applied to a benchmark's operator process as the kubelet applies it to
 * the container: a memory cgroup with that limit. It matters beyond a cap: Node sizes V8's heap from the
 * memory it is constrained to (process.constrainedMemory(): with the chart's 512Mi the heap limit is
 * ~259 MiB, on this 24 GiB machine without one ~4.2 GiB), and V8 lets the old generation grow to a
 * larger multiple of the live heap under a large heap limit. An operator measured without its pod's limit
 * keeps a heap sized for a machine it never runs on in its pod.
 *
 * Written here, not taken from a library: a cgroup with one limit for one child process is a few file
 * writes; the test bed's own cgroup code (test/testbed/node.ts) finds the mounts.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { parseQuantity } from "../../src/operator/pool.ts";
import { cgroupMounts } from "../../test/testbed/node.ts";
import { REPO_ROOT } from "./report.ts";

/** The operator container's `resources.limits.memory` in the chart's default values, in bytes. */
export function chartMemoryLimit(): number {
  const values = parse(readFileSync(join(REPO_ROOT, "charts", "livy-operator", "values.yaml"), "utf8")) as {
    resources?: { limits?: { memory?: string } };
  };
  const q = values.resources?.limits?.memory;
  if (!q) throw new Error("charts/livy-operator/values.yaml: no resources.limits.memory");
  return parseQuantity(q);
}

export interface MemoryCgroup {
  /** The command that runs `argv` inside the cgroup (a shell that moves itself in, then execs it). */
  wrap(argv: string[]): { command: string; args: string[] };
  limitBytes: number;
  dispose(): void;
}

/**
 * A memory cgroup of `limitBytes` named `name` (cgroup v1's memory controller or cgroup v2), or an error
 * saying why none can be made here (not root, no memory controller).
 */
export function memoryCgroup(name: string, limitBytes: number): MemoryCgroup {
  const mounts = cgroupMounts();
  const v1 = mounts.find((m) => existsSync(join(m, "memory.limit_in_bytes")));
  const v2 = mounts.find((m) => {
    const controllers = join(m, "cgroup.controllers");
    return existsSync(controllers) && readFileSync(controllers, "utf8").split(/\s+/).includes("memory");
  });
  const root = v1 ?? v2;
  if (!root) throw new Error("no cgroup memory controller mounted: cannot apply the pod's memory limit");
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, v1 ? "memory.limit_in_bytes" : "memory.max"), String(limitBytes));
  const procs = join(dir, "cgroup.procs");
  return {
    limitBytes,
    wrap: (argv) => ({
      command: "/bin/sh",
      // exec: the shell's pid becomes node's, so the caller's pid, signals and /proc reads stay right
      args: ["-c", `echo $$ > '${procs}' && exec "$@"`, "sh", ...argv],
    }),
    dispose: () => {
      try {
        rmdirSync(dir);
      } catch {
        // still has a task (a process not yet reaped): the next run's mkdir reuses it
      }
    },
  };
}
