import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
}

export interface RunningProcess {
  name: string;
  pid: number;
  log: string;
  /** How it was started (cwd resolved), so that it can be stopped and started again the same way. */
  spec?: ProcessSpec;
}

/**
 * Starts a long-running component detached from this process (its own process group), with stdout and
 * stderr in `<stateDir>/logs/<name>.log`, so that `testbed up` can return while it keeps running and
 * `down` can stop the whole group later.
 */
export function startProcess(spec: ProcessSpec, stateDir: string): RunningProcess {
  const log = join(stateDir, "logs", `${spec.name}.log`);
  mkdirSync(dirname(log), { recursive: true });
  const fd = openSync(log, "a");
  const child = spawn(spec.command, spec.args, {
    cwd: spec.cwd ?? stateDir,
    env: { ...process.env, ...spec.env },
    stdio: ["ignore", fd, fd],
    detached: true,
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`${spec.name}: could not start ${spec.command}`);
  child.unref();
  return { name: spec.name, pid: child.pid, log, spec: { ...spec, cwd: spec.cwd ?? stateDir } };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM the process group, then SIGKILL what is left after `graceMs`. */
export async function stopProcess(pid: number, graceMs = 5_000): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    }
  };
  signal("SIGTERM");
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(pid)) signal("SIGKILL");
  while (isAlive(pid)) await sleep(20);
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Polls `probe` until it returns true. Fails with the component's name, what it waited for, and the tail
 * of its log, so a component that cannot start says which and why.
 */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  opts: { timeoutMs: number; proc?: RunningProcess; intervalMs?: number },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError = "";
  while (Date.now() < deadline) {
    if (opts.proc && !isAlive(opts.proc.pid)) {
      throw new Error(`${what}: process exited while starting\n${await tail(opts.proc.log)}`);
    }
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    await sleep(opts.intervalMs ?? 200);
  }
  const logTail = opts.proc ? `\n${await tail(opts.proc.log)}` : "";
  throw new Error(
    `${what}: not ready after ${opts.timeoutMs} ms${lastError ? ` (${lastError})` : ""}${logTail}`,
  );
}

/**
 * Polls `fn` every `intervalMs` until it gives something truthy, and returns it; an error thrown by `fn` is
 * remembered (quoted at the timeout) and polled again. The one `until` of the tests: the integration harness
 * polls fast (100 ms, in-process calls), the end-to-end suite slowly (each probe is a kubectl process).
 */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false | null>,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`,
  );
}

export async function tail(file: string, lines = 30): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  try {
    const text = await readFile(file, "utf8");
    return `--- last lines of ${file} ---\n${text.split("\n").slice(-lines).join("\n")}`;
  } catch {
    return `(no log at ${file})`;
  }
}

/**
 * Waits until the API server serves the CRD `name` (its Established condition True). Polled rather than with
 * `kubectl wait --for=condition=Established`, which fails at once ("accessor error: <nil>") instead of waiting
 * while a CRD just created has no conditions yet: a scale benchmark failed so, and `make demo` used it too.
 */
export async function untilCrdEstablished(
  kubectl: (args: string[]) => Promise<string>,
  name: string,
  timeoutMs = 60_000,
): Promise<void> {
  await until(
    `the CRD ${name} Established`,
    async () =>
      (
        await kubectl([
          "get",
          `crd/${name}`,
          "-o",
          'jsonpath={.status.conditions[?(@.type=="Established")].status}',
        ])
      ).trim() === "True",
    timeoutMs,
  );
}
