import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applySession,
  createNamespace,
  getSession,
  installCrd,
  kubectl,
  type OperatorProcess,
  startOperator,
} from "../integration/harness.ts";
import { testbed } from "../testbed/context.ts";
import {
  convergedGone,
  convergedParked,
  convergedReady,
  deleteSession,
  patchSession,
  reconcileErrors,
  rng,
  sleep,
} from "./helpers.ts";

/**
 * The operator SIGKILLed at a random point of each phase of the lifecycle (create, idle teardown, wake,
 * delete) and started again: afterwards every LivySession converges, with exactly one Livy session and one
 * Deployment/Service/ConfigMap per Ready session, no Deployment for an idle one, nothing for a deleted one, and
 * no finalizer stuck.
 * FAULTS_KILLS_PER_PHASE (CI: 5; `npm run soak`: 20), FAULTS_BATCH LivySessions per cycle, FAULTS_SEED to
 * replay the same kill points.
 */
const KILLS = Number(process.env.FAULTS_KILLS_PER_PHASE ?? 5);
const BATCH = Number(process.env.FAULTS_BATCH ?? 3);
const SEED = Number(process.env.FAULTS_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** A test that starts the operator several times: starting it took over a minute at load average 20-28. */
const CYCLE_TIMEOUT_MS = 15 * 60_000;

/** Kill windows (ms after the trigger), about the time each phase takes on the test bed without a kill. */
const WINDOW = { create: 2_500, idle: 1_200, wake: 2_500, delete: 1_500 } as const;
type Phase = keyof typeof WINDOW;

interface KillRecord {
  cycle: number;
  phase: Phase;
  killAfterMs: number;
  convergedMs: number;
}

describe(`operator SIGKILLed at random points (seed ${SEED}, ${KILLS} per phase)`, () => {
  let ns: string;
  let op: OperatorProcess;
  let generation = 0;
  const random = rng(SEED);
  const record: KillRecord[] = [];

  const start = async () => {
    op = await startOperator({ name: `kill-${generation++}`, args: ["--namespaces", ns] });
  };

  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("kill");
    await start();
  });

  afterAll(async () => {
    if (ns) {
      if (op?.proc.exitCode !== null) await start();
      await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
        () => "",
      );
      await op?.stop();
      await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
    }
    const by = (p: Phase) => record.filter((r) => r.phase === p);
    const summary = Object.fromEntries(
      (Object.keys(WINDOW) as Phase[]).map((p) => [
        p,
        {
          kills: by(p).length,
          killAfterMs: by(p).map((r) => r.killAfterMs),
          convergedMaxMs: Math.max(0, ...by(p).map((r) => r.convergedMs)),
        },
      ]),
    );
    console.log(`[faults] operator kills (seed ${SEED}): ${JSON.stringify(summary)}`);
  });

  /** Triggers a phase, SIGKILLs the operator at a random point of it, starts a new one, awaits convergence. */
  async function killDuring(
    cycle: number,
    phase: Phase,
    trigger: () => Promise<unknown>,
    converged: () => Promise<void>,
  ): Promise<void> {
    const killAfterMs = Math.floor(random() * WINDOW[phase]);
    const t0 = Date.now();
    await trigger();
    await sleep(Math.max(0, killAfterMs - (Date.now() - t0)));
    await op.kill();
    await start();
    await converged();
    record.push({ cycle, phase, killAfterMs, convergedMs: Date.now() - t0 });
    // the new operator found a half-done pass and finished it, without a reconcile error
    expect(await reconcileErrors(op), `reconcile errors after a kill in ${phase}`).toBe(0);
  }

  it(
    "an idle teardown cut after the Livy session was deleted ends Idle, not SessionLost",
    async () => {
      // The state a kill leaves between the teardown's first step and its record: the Livy session deleted,
      // the status still Ready, the idle deadline passed. (Before the fix the server went first, and the
      // next operator read the half-removed server as ServerLost/SessionLost: Failed instead of Idle.)
      await applySession(ns, "cut", { kind: "pyspark", idleTimeout: "1h" });
      try {
        await convergedReady(ns, ["cut"]);
        const ready = await getSession(ns, "cut");
        await op.kill();
        const res = await fetch(`${testbed().standinUrl}/sessions/${ready?.status?.livySessionId}`, {
          method: "DELETE",
        });
        expect(res.status).toBe(200);
        await patchSession(ns, "cut", { spec: { idleTimeout: "1s" } });
        // A teardown deletes the Livy session only once the idle deadline has passed: so must the state
        // built here, before the next operator looks. (On an idle machine it started within the second
        // after the session's last activity, saw the session gone before its deadline, and rightly called
        // it SessionLost: the landing CI of 2ab20f1 failed so.)
        const st = ready?.status;
        const lastActivity = Date.parse(st?.lastActivityTime ?? st?.readyTime ?? "");
        expect(Number.isFinite(lastActivity), "a Ready status records its last activity").toBe(true);
        await sleep(Math.max(0, lastActivity + 1_000 + 250 - Date.now()));
        await start();
        await convergedParked(ns, ["cut"], "Idle");
        const idle = await getSession(ns, "cut");
        expect(idle?.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({
          reason: "IdleTimeout",
        });
        expect(await reconcileErrors(op)).toBe(0);
      } finally {
        // whatever failed above, the cycles below start from an empty namespace
        if (op.proc.exitCode !== null) await start();
        await deleteSession(ns, "cut").catch(() => undefined);
      }
      await convergedGone(ns);
    },
    CYCLE_TIMEOUT_MS,
  );

  it.each(Array.from({ length: KILLS }, (_, i) => i))(
    "cycle %i: create, idle teardown, wake and delete, each cut by SIGKILL, converge without duplicates or leaks",
    async (cycle) => {
      const names = Array.from({ length: BATCH }, (_, j) => `c${cycle}-s${j}`);

      await killDuring(
        cycle,
        "create",
        () => Promise.all(names.map((n) => applySession(ns, n, { kind: "pyspark", idleTimeout: "1h" }))),
        () => convergedReady(ns, names),
      );
      const first = await Promise.all(
        names.map(async (n) => (await getSession(ns, n))?.status?.livySessionId),
      );

      // an idle timeout shorter than the time since the last activity: the teardown starts at once
      await killDuring(
        cycle,
        "idle",
        () => Promise.all(names.map((n) => patchSession(ns, n, { spec: { idleTimeout: "1s" } }))),
        () => convergedParked(ns, names, "Idle"),
      );

      await killDuring(
        cycle,
        "wake",
        () =>
          Promise.all(
            names.map((n) =>
              patchSession(ns, n, {
                metadata: { annotations: { "livy.dev/demanded-at": new Date().toISOString() } },
                spec: { idleTimeout: "1h" },
              }),
            ),
          ),
        () => convergedReady(ns, names),
      );
      const second = await Promise.all(
        names.map(async (n) => (await getSession(ns, n))?.status?.livySessionId),
      );
      for (const [j, id] of second.entries())
        expect(id, "a new Livy session after the wake").not.toBe(first[j]);

      await killDuring(
        cycle,
        "delete",
        () => Promise.all(names.map((n) => deleteSession(ns, n))),
        () => convergedGone(ns),
      );
    },
    // four operator starts: each up to the harness's 3 minutes on a loaded machine
    CYCLE_TIMEOUT_MS,
  );
});
