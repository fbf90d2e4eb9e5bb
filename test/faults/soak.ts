#!/usr/bin/env node
/**
 * npm run soak: the fault suite at full length, on a test bed of its own (or LIVY_TESTBED_REUSE=<dir>):
 * 20 operator kills per lifecycle phase, kube-apiserver stopped 30 s, 1000 create/delete and 1000
 * idle/wake cycles with the operator's memory every 100 cycles. Takes an hour or so on 2 cores.
 *
 *   npm run soak [-- <vitest args>]      e.g. npm run soak -- -t "soak:" for the cycles alone
 *
 * Settings (environment, with the soak's defaults): FAULTS_KILLS_PER_PHASE=20, FAULTS_OUTAGE_MS=30000,
 * FAULTS_SOAK_CYCLES=1000, FAULTS_SOAK_LANES=10, FAULTS_SEED (random). Real Livy is not needed (the
 * stand-in plays it): LIVY_TESTBED_SKIP_LIVY=1 unless set otherwise. The vitest output and the memory
 * samples (JSON lines) go to a directory under the system's temp dir, printed at the end.
 */
import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../testbed/paths.ts";

const out =
  process.env.FAULTS_SOAK_DIR ??
  join(tmpdir(), `livy-operator-soak-${new Date().toISOString().replace(/[:.]/g, "-")}`);
mkdirSync(out, { recursive: true });
const env: NodeJS.ProcessEnv = {
  LIVY_TESTBED_SKIP_LIVY: "1",
  FAULTS_KILLS_PER_PHASE: "20",
  FAULTS_OUTAGE_MS: "30000",
  FAULTS_SOAK_CYCLES: "1000",
  ...process.env,
  FAULTS_SOAK: "1",
  FAULTS_REPORT: process.env.FAULTS_REPORT ?? join(out, "memory.jsonl"),
};
const log = createWriteStream(join(out, "vitest.log"));
const args = [
  join(REPO_ROOT, "node_modules", "vitest", "vitest.mjs"),
  "run",
  "--project",
  "integration",
  "--testTimeout",
  String(4 * 3_600_000),
  "test/faults/",
  ...process.argv.slice(2),
];
process.stderr.write(`[soak] output in ${out}\n`);
const started = Date.now();
const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
for (const stream of [child.stdout, child.stderr]) {
  stream.on("data", (chunk: Buffer) => {
    process.stdout.write(chunk);
    log.write(chunk);
  });
}
child.on("exit", (code) => {
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  log.end(() => {
    process.stderr.write(
      `[soak] ${code === 0 ? "passed" : `FAILED (exit ${code})`} in ${minutes} min; vitest output ${join(out, "vitest.log")}, memory samples ${env.FAULTS_REPORT}\n`,
    );
    process.exit(code ?? 1);
  });
});
