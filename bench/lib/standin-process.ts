/** A Livy stand-in as a process of the benchmark's own, for benchmarks run without a test bed. */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT } from "./report.ts";

/** A stand-in process of our own when there is no test bed (`--livy-url`). */
export async function spawnStandin(): Promise<{ url: string; stop: () => void }> {
  const child = spawn(process.execPath, [join(REPO_ROOT, "test", "standin", "main.ts"), "--port", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buf = "";
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      const line = buf.split("\n")[0];
      if (buf.includes("\n") && line) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once("exit", (code) => reject(new Error(`stand-in exited with ${code}`)));
  });
  return { url, stop: () => child.kill("SIGTERM") };
}
