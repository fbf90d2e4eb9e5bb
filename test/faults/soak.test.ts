import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applySession,
  createNamespace,
  getSession,
  installCrd,
  isReady,
  kubectl,
  metricValue,
  type OperatorProcess,
  startOperator,
  until,
} from "../integration/harness.ts";
import { testbed } from "../testbed/context.ts";
import {
  convergedGone,
  deleteSession,
  liveOnly,
  owned,
  patchSession,
  sessions,
  sleep,
  standinSessions,
} from "./helpers.ts";

/**
 * The long runs, only with FAULTS_SOAK=1 (`npm run soak`): FAULTS_SOAK_CYCLES (1000) create/delete cycles
 * and as many idle/wake cycles, FAULTS_SOAK_LANES (10) at a time, against the stand-in. Every 100 cycles
 * the operator's RSS (/proc/<pid>/status VmRSS) and V8 heap after a full GC (its /metrics) are recorded; at the end
 * nothing may be left: no LivySession, finalizer, owned object or Livy session, and no reconcile error.
 * Each LivySession gets its own server URL (the stand-in's, with a fragment naming the session), as each
 * has its own Service in a cluster, so that anything the operator keeps per server shows up as growth.
 * Figures go to the console and, as JSON lines, to FAULTS_REPORT (default <state dir>/logs/soak.jsonl).
 */
const SOAK = process.env.FAULTS_SOAK === "1";
const CYCLES = Number(process.env.FAULTS_SOAK_CYCLES ?? 1000);
const LANES = Number(process.env.FAULTS_SOAK_LANES ?? 10);
const EVERY = 100;

interface Sample {
  run: string;
  cycles: number;
  seconds: number;
  rssMiB: number;
  heapUsedMiB: number;
}

/**
 * A full garbage collection in the operator, through the inspector it was started with (NODE_OPTIONS
 * --inspect=127.0.0.1:0): the heap read right after is what is retained, not what awaits collection.
 */
async function collectGarbage(op: OperatorProcess): Promise<void> {
  const url = /Debugger listening on (ws:\/\/\S+)/.exec(op.logs())?.[1];
  if (!url) throw new Error("the operator was not started with an inspector");
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => ws.send(JSON.stringify({ id: 1, method: "HeapProfiler.collectGarbage" }));
    ws.onmessage = (m) => {
      if ((JSON.parse(String(m.data)) as { id?: number }).id === 1) resolve();
    };
    ws.onerror = () => reject(new Error(`inspector ${url}: connection failed`));
  });
  ws.close();
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : Number.NaN;
}

describe.skipIf(!SOAK)(
  `soak: ${CYCLES} create/delete and ${CYCLES} idle/wake cycles, ${LANES} at a time`,
  () => {
    let ns: string;
    let op: OperatorProcess;
    const report = process.env.FAULTS_REPORT ?? join(testbed().stateDir, "logs", "soak.jsonl");
    const samples: Sample[] = [];

    const sample = async (run: string, cycles: number, started: number) => {
      const pid = op.proc.pid ?? 0;
      await collectGarbage(op);
      const heap = metricValue(await op.metrics(), "nodejs_heap_size_used_bytes");
      const s: Sample = {
        run,
        cycles,
        seconds: Math.round((Date.now() - started) / 100) / 10,
        rssMiB: rssMiB(pid),
        heapUsedMiB: Math.round((heap / 2 ** 20) * 10) / 10,
      };
      samples.push(s);
      appendFileSync(report, `${JSON.stringify({ at: new Date().toISOString(), ...s })}\n`);
      console.log(`[soak] ${JSON.stringify(s)}`);
    };

    const noErrors = async () =>
      expect(metricValue(await op.metrics(), "controller_runtime_reconcile_total", { result: "error" })).toBe(
        0,
      );

    beforeAll(async () => {
      mkdirSync(dirname(report), { recursive: true });
      await installCrd();
      ns = await createNamespace("soak");
      op = await startOperator({
        name: "soak",
        args: [
          "--namespaces",
          ns,
          "--server-url-template",
          `${testbed().standinUrl}/#{namespace}.{name}`,
          "--log-level",
          "info",
        ],
        env: { NODE_OPTIONS: "--inspect=127.0.0.1:0" },
      });
    });

    afterAll(async () => {
      await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=120s"]).catch(
        () => "",
      );
      await op?.stop();
      await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
      console.log(`[soak] samples: ${JSON.stringify(samples)}`);
    });

    it(
      "create, Ready, delete, gone: memory flat, nothing left",
      async () => {
        const started = Date.now();
        await sample("create-delete", 0, started);
        let done = 0;
        let next = 0;
        const lane = async () => {
          for (;;) {
            const n = next++;
            if (n >= CYCLES) return;
            const name = `cd-${n}`;
            await applySession(ns, name, { kind: "pyspark", idleTimeout: "1h" });
            await until(
              `${name} Ready`,
              async () => {
                const ls = await getSession(ns, name);
                return ls && isReady(ls);
              },
              60_000,
            );
            await deleteSession(ns, name);
            await until(`${name} gone`, async () => (await getSession(ns, name)) === null, 60_000);
            done++;
            if (done % EVERY === 0) await sample("create-delete", done, started);
          }
        };
        await Promise.all(Array.from({ length: LANES }, lane));
        await convergedGone(ns, 120_000);
        await noErrors();
        // flat after warm-up (the first 100 cycles): a per-session leak of even 10 KiB would add ~9 MiB
        const run = samples.filter((x) => x.run === "create-delete" && x.cycles >= EVERY);
        const first = run[0];
        const last = run.at(-1);
        if (first && last && last.cycles >= 5 * EVERY)
          expect(last.heapUsedMiB - first.heapUsedMiB, "retained heap growth (MiB)").toBeLessThan(5);
      },
      4 * 3_600_000,
    );

    it(
      "idle teardown and wake: memory flat, at most one Livy session each, nothing left",
      async () => {
        const started = Date.now();
        await sample("idle-wake", 0, started);
        const names = Array.from({ length: LANES }, (_, i) => `iw-${i}`);
        await Promise.all(names.map((n) => applySession(ns, n, { kind: "pyspark", idleTimeout: "1s" })));
        let done = 0;
        const lane = async (name: string) => {
          for (;;) {
            if (done >= CYCLES) return;
            await until(
              `${name} Ready`,
              async () => {
                const ls = await getSession(ns, name);
                return ls && isReady(ls);
              },
              60_000,
            );
            await until(
              `${name} Idle`,
              async () => (await getSession(ns, name))?.status?.phase === "Idle",
              60_000,
            );
            done++;
            if (done % EVERY === 0) await sample("idle-wake", done, started);
            if (done >= CYCLES) return;
            await patchSession(ns, name, {
              metadata: { annotations: { "livy.dev/demanded-at": `${new Date().toISOString()}#${done}` } },
            });
          }
        };
        await Promise.all(names.map(lane));
        // parked: no Livy session, no server
        await until(
          "all idle, nothing deployed",
          async () => {
            const [all, objs, livy] = await Promise.all([sessions(ns), owned(ns), standinSessions(`${ns}.`)]);
            return (
              all.every((s) => s.status?.phase === "Idle") &&
              objs.deployments.length === 0 &&
              liveOnly(livy).length === 0
            );
          },
          60_000,
        );
        await noErrors();
        await Promise.all(names.map((n) => deleteSession(ns, n)));
        await convergedGone(ns, 120_000);
        await sleep(1_000);
        await sample("after", CYCLES, started);
      },
      4 * 3_600_000,
    );
  },
);
