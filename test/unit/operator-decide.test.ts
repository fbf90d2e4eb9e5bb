import { describe, expect, it } from "vitest";
import {
  DEFAULT_WARMUP_CODE,
  demandToken,
  FINALIZER,
  type LivySessionStatus,
  phaseOf,
  SESSION_CONF_DEFAULTS,
  statusSchema,
} from "../../src/api/index.ts";
import {
  decide,
  SERVING_POLLS_PER_SECOND,
  STARTING_POLL_MS,
  STARTING_POLLS_PER_SECOND,
  servingPollMs,
  startingPollMs,
} from "../../src/operator/decide.ts";
import type { OwnedObjects } from "../../src/operator/plan.ts";
import {
  cond,
  failed,
  livySession,
  ok,
  readyStatus,
  resource,
  SERVER_URL,
  SETTINGS,
  serverOf,
  statement,
  statusOf,
  step,
  T0,
  world,
} from "./operator-world.ts";

const phase = (status: LivySessionStatus | undefined) => phaseOf({ status });
const S = 1_000;
const MIN = 60 * S;

describe("decide: creation to Ready", () => {
  it("adds the finalizer together with the first apply of the server's objects (one round trip)", () => {
    const { plan } = step(world(resource({}, { finalizers: [] })));
    expect(plan.finalizer).toBe("add");
    expect(plan.apply?.map((a) => a.kind)).toEqual(["deployment", "configMap", "service"]);
    expect(plan.requeueAfterMs).toBe(0);
    expect(plan.status, "the status waits for the finalizer and the objects").toBeUndefined();
    expect(plan.events).toBeUndefined();
  });

  it("adds only the finalizer when the first step would do more than apply (suspended, objects there)", () => {
    const suspended = step(world(resource({ suspend: true }, { finalizers: [] })));
    expect(suspended.plan).toEqual({ finalizer: "add", requeueAfterMs: 0 });
    const deployed = step(world(resource({}, { finalizers: [] }), { server: "progressing" }));
    expect(deployed.plan).toEqual({ finalizer: "add", requeueAfterMs: 0 });
  });

  it("polls a starting Livy session tightly, spread when many start at once", () => {
    // seen idle 5 ms late on average
    expect(startingPollMs(1, 5_000)).toBe(10);
    expect(startingPollMs(5, 5_000)).toBe(STARTING_POLL_MS);
    expect(startingPollMs(10, 5_000)).toBe(20);
    // all of them together at most STARTING_POLLS_PER_SECOND
    expect(startingPollMs(1_000, 5_000)).toBe((1_000 * 1_000) / STARTING_POLLS_PER_SECOND);
    // never slower than a Ready session's poll
    expect(startingPollMs(10_000, 5_000)).toBe(5_000);
    const many = step(
      { ...world(resource(), { server: "available" }), starting: 2_000 },
      { session: ok(livySession(3, "starting")) },
    );
    expect(many.plan.requeueAfterMs).toBe(4_000);
  });

  it("applies the Deployment, ConfigMap and Service, and looks again at once", () => {
    const { plan } = step(world(resource()));
    expect(plan.apply?.map((a) => a.kind)).toEqual(["deployment", "configMap", "service"]);
    expect(plan.requeueAfterMs).toBe(0);
    expect(plan.status, "the status waits for the next step").toBeUndefined();
  });

  it("applies the NetworkPolicy too with --network-policy", () => {
    const settings = { ...SETTINGS, networkPolicy: true };
    const { plan } = step(world(resource(), { settings }));
    expect(plan.apply?.map((a) => a.kind)).toContain("networkPolicy");
  });

  it("waits for the Deployment: Starting, Deploying, a recheck before startupTimeout", () => {
    const { plan } = step(world(resource({ startupTimeout: "20s" }), { server: "progressing" }));
    const st = statusOf(plan);
    expect(phase(st)).toBe("Starting");
    expect(cond(st, "ServerReady")).toMatchObject({ status: "False", reason: "Deploying" });
    expect(cond(st, "Ready")).toMatchObject({ status: "False", reason: "Starting" });
    expect(cond(st, "Idle")).toMatchObject({ status: "False", reason: "Active" });
    expect(st.startTime).toBe(new Date(T0).toISOString());
    expect(plan.requeueAfterMs).toBe(20 * S);
    expect(plan.apply).toBeUndefined();
  });

  it("asks Livy for the attempt's session by name once the server is available", () => {
    const { query } = step(world(resource(), { server: "available" }), { session: ok(null) });
    expect(query).toEqual({
      url: SERVER_URL,
      auth: undefined,
      sessionName: expect.stringMatching(new RegExp(`^data\\.ws\\.${T0.toString(36)}\\.0\\.[0-9a-f]{8}$`)),
      activity: true,
      owner: { namespace: "data", name: "ws" },
      warmup: { code: DEFAULT_WARMUP_CODE.pyspark },
    });
  });

  it("records the attempt, then creates the Livy session named after it, then looks again", () => {
    const { plan } = step(world(resource({ session: { driverMemory: "1g" } }), { server: "available" }), {
      session: ok(null),
    });
    const st = statusOf(plan);
    expect(st.startTime).toBe(new Date(T0).toISOString());
    expect(st.serverURL).toBe(SERVER_URL);
    expect(plan.createLivySession).toEqual({
      url: SERVER_URL,
      auth: undefined,
      body: {
        driverMemory: "1g",
        conf: SESSION_CONF_DEFAULTS,
        kind: "pyspark",
        name: expect.stringMatching(new RegExp(`^data\\.ws\\.${T0.toString(36)}\\.0\\.[0-9a-f]{8}$`)),
      },
    });
    expect(plan.requeueAfterMs).toBe(0);
  });

  it("records the server's URL with the attempt from its first status write, before the server is up", () => {
    const { plan } = step(world(resource(), { server: "progressing" }));
    expect(statusOf(plan).serverURL).toBe(SERVER_URL);
    expect(statusOf(plan).livySessionId).toBeUndefined();
  });

  it("creates the Livy session together with the status write once an earlier write recorded the attempt", () => {
    const deploying = statusOf(step(world(resource(), { server: "progressing" })).plan);
    const available = world(resource({}, { status: deploying }), { server: "available", now: T0 + S });
    const { plan } = step(available, { session: ok(null) });
    expect(plan.createLivySession?.recorded, "its name and URL are stored: no write to wait for").toBe(true);
    expect(plan.createLivySession?.body.name).toMatch(new RegExp(`^data\\.ws\\.${T0.toString(36)}\\.0\\.`));
    expect(statusOf(plan).startTime).toBe(deploying.startTime);
    // a record without the URL (written by an operator before this one), or of another attempt: write first
    const { serverURL: _, ...withoutUrl } = deploying;
    const older = world(resource({}, { status: withoutUrl }), { server: "available", now: T0 + S });
    expect(step(older, { session: ok(null) }).plan.createLivySession?.recorded).toBeUndefined();
    // the record of a restart of the attempt (Recover) is the one stored: recorded too
    const otherAttempt = { ...deploying, restarts: 1 };
    const restarted = world(resource({}, { status: otherAttempt }), { server: "available", now: T0 + S });
    expect(step(restarted, { session: ok(null) }).plan.createLivySession?.recorded).toBe(true);
    const fresh = step(world(resource(), { server: "available" }), { session: ok(null) });
    expect(fresh.plan.createLivySession?.recorded, "the attempt starts in this very step").toBeUndefined();
  });

  it("adopts the attempt's session found by name (a pass killed after its POST): no second one", () => {
    const { plan } = step(world(resource(), { server: "available" }), {
      session: ok(livySession(3, "starting")),
    });
    expect(plan.createLivySession).toBeUndefined();
    const st = statusOf(plan);
    expect(st.livySessionId).toBe(3);
    expect(st.sessionURL).toBe(`${SERVER_URL}/sessions/3`);
    expect(cond(st, "SessionReady")).toMatchObject({ status: "False", reason: "SessionStarting" });
    expect(plan.requeueAfterMs).toBe(STARTING_POLL_MS);
  });

  it("is Ready once the Livy session is idle: endpoints, readyTime, the demand-to-Ready figure", () => {
    const st = readyStatus();
    expect(phase(st)).toBe("Ready");
    expect(cond(st, "Ready")).toMatchObject({ status: "True", reason: "Ready" });
    expect(cond(st, "ServerReady")).toMatchObject({ status: "True", reason: "ServerAvailable" });
    expect(cond(st, "SessionReady")).toMatchObject({ status: "True", reason: "SessionIdle" });
    expect(st).toMatchObject({
      serverURL: SERVER_URL,
      sessionURL: `${SERVER_URL}/sessions/7`,
      livySessionId: 7,
      livySessionState: "idle",
      readyTime: new Date(T0).toISOString(),
      phase: "Ready",
      observedGeneration: 1,
    });
    const created = step(world(resource(), { server: "available" }), { session: ok(null) }).plan;
    const ls = resource({}, { status: statusOf(created) });
    const { plan } = step(world(ls, { server: "available", now: T0 + 2 * S }), {
      session: ok(livySession(7, "idle")),
    });
    expect(plan.metrics?.demandToReadySeconds).toBe(2);
    expect(plan.events).toEqual([expect.objectContaining({ type: "Normal", reason: "Ready" })]);
  });

  it("times out a Deployment that never becomes available (FailFast): Failed, server removed", () => {
    const ls = resource({ startupTimeout: "5s" });
    const first = statusOf(step(world(ls, { server: "progressing" })).plan);
    const { plan } = step(
      world(resource({ startupTimeout: "5s" }, { status: first }), {
        server: "progressing",
        now: T0 + 6 * S,
      }),
    );
    const st = statusOf(plan);
    expect(phase(st)).toBe("Failed");
    expect(cond(st, "Ready")?.reason).toBe("StartupTimeout");
    expect(plan.deleteOwned).toEqual(["deployment", "service", "configMap"]);
    expect(plan.requeueAfterMs).toBeUndefined();
  });

  it("times out a Livy session that never becomes idle", () => {
    const st0 = statusOf(
      step(world(resource({ startupTimeout: "5s" }), { server: "available" }), {
        session: ok(livySession(3, "starting")),
      }).plan,
    );
    const { plan } = step(
      world(resource({ startupTimeout: "5s" }, { status: st0 }), { server: "available", now: T0 + 6 * S }),
      { session: ok(livySession(3, "starting")) },
    );
    expect(cond(statusOf(plan), "Ready")?.reason).toBe("StartupTimeout");
    expect(plan.deleteLivySession).toEqual({ url: SERVER_URL, id: 3, auth: undefined });
  });

  it("retries soon while Livy is busy creating sessions (400 too many), within startupTimeout", () => {
    const { plan } = step(world(resource(), { server: "available" }), {
      session: failed("http", "Rejected, too many sessions are being created!", {
        status: 400,
        tooManySessions: true,
      }),
    });
    expect(cond(statusOf(plan), "Ready")).toMatchObject({ reason: "Starting" });
    expect(plan.requeueAfterMs).toBe(1_000);
  });

  it("treats a server that does not answer yet as starting, until startupTimeout", () => {
    const { plan } = step(world(resource(), { server: "available" }), { session: failed("unreachable") });
    const st = statusOf(plan);
    expect(cond(st, "SessionReady")).toMatchObject({ reason: "LivyUnreachable" });
    expect(phase(st)).toBe("Starting");
    expect(plan.requeueAfterMs).toBe(1_000);
  });

  it("waits for a missing auth Secret, saying so", () => {
    const { plan } = step(
      world(resource({ auth: { type: "Bearer", secretName: "nope" } }), {
        server: "available",
        auth: { state: "invalid", message: "Secret nope not found" },
      }),
    );
    const st = statusOf(plan);
    expect(cond(st, "Ready")).toMatchObject({
      reason: "AuthSecretInvalid",
      message: "Secret nope not found",
    });
    expect(st.message).toBe("AuthSecretInvalid: Secret nope not found");
  });

  it("passes the Secret's credentials to every Livy call", () => {
    const auth = { type: "bearer" as const, token: "t" };
    const { plan, query } = step(
      world(resource({ auth: { type: "Bearer", secretName: "s" } }), {
        server: "available",
        auth: { state: "ok", auth },
      }),
      { session: ok(null) },
    );
    expect(query?.auth).toBe(auth);
    expect(plan.createLivySession?.auth).toBe(auth);
  });
});

describe("decide: Ready, activity and idleness", () => {
  const ready = readyStatus({ idleTimeout: "10m" });
  const readyAt = (now: number, activity = ok({ busy: false, latestMs: 0 }), state = "idle") =>
    step(world(resource({ idleTimeout: "10m" }, { status: ready }), { server: "available", now }), {
      session: ok(livySession(7, state)),
      activity,
    });

  it("polls the session with its activity, and writes nothing while nothing changes", () => {
    const { plan, query } = readyAt(T0 + 5 * S);
    expect(query).toEqual({
      url: SERVER_URL,
      auth: undefined,
      sessionId: 7,
      activity: true,
      owner: { namespace: "data", name: "ws" },
    });
    expect(plan.requeueAfterMs).toBe(SETTINGS.sessionPollIntervalMs);
    expect(plan.status).toMatchObject({ ...ready, lastActivityTime: ready.readyTime });
  });

  it("counts a statement's completion as activity", () => {
    const { plan } = readyAt(T0 + 60 * S, ok({ busy: false, latestMs: T0 + 30 * S }));
    expect(statusOf(plan).lastActivityTime).toBe(new Date(T0 + 30 * S).toISOString());
  });

  it("counts a busy session as activity now", () => {
    const { plan } = readyAt(T0 + 60 * S, ok({ busy: false, latestMs: 0 }), "busy");
    const st = statusOf(plan);
    expect(st.lastActivityTime).toBe(new Date(T0 + 60 * S).toISOString());
    expect(cond(st, "SessionReady")?.reason).toBe("SessionBusy");
  });

  it("counts a running statement as activity now", () => {
    const { plan } = readyAt(T0 + 60 * S, ok({ busy: true, latestMs: T0 }));
    expect(statusOf(plan).lastActivityTime).toBe(new Date(T0 + 60 * S).toISOString());
  });

  it("schedules the next look at the idle deadline when it comes before the next poll", () => {
    const { plan } = readyAt(T0 + 10 * MIN - 2 * S);
    expect(plan.requeueAfterMs).toBe(2 * S);
    expect(plan.routine).toBe(true);
  });

  it("polls a Ready session as routine work, spread when many are Ready", () => {
    expect(readyAt(T0 + 5 * S).plan.routine).toBe(true);
    // up to SERVING_POLLS_PER_SECOND × the interval Ready: each at the interval
    expect(servingPollMs(1, 5_000)).toBe(5_000);
    expect(servingPollMs(1_000, 5_000)).toBe(5_000);
    // beyond: all of them together at most SERVING_POLLS_PER_SECOND
    expect(servingPollMs(10_000, 5_000)).toBe((10_000 * 1_000) / SERVING_POLLS_PER_SECOND);
    const many = step(
      {
        ...world(resource({ idleTimeout: "10m" }, { status: ready }), {
          server: "available",
          now: T0 + 5 * S,
        }),
        serving: 10_000,
      },
      { session: ok(livySession(7, "idle")), activity: ok({ busy: false, latestMs: 0 }) },
    );
    expect(many.plan.requeueAfterMs).toBe(50 * S);
    expect(many.plan.routine).toBe(true);
    // the idle deadline is still met on time
    const due = step(
      {
        ...world(resource({ idleTimeout: "10m" }, { status: ready }), {
          server: "available",
          now: T0 + 10 * MIN - 2 * S,
        }),
        serving: 10_000,
      },
      { session: ok(livySession(7, "idle")), activity: ok({ busy: false, latestMs: 0 }) },
    );
    expect(due.plan.requeueAfterMs).toBe(2 * S);
  });

  it("tears down after idleTimeout: Livy session, then the record, then the server", () => {
    const { plan } = readyAt(T0 + 10 * MIN);
    const st = statusOf(plan);
    expect(phase(st)).toBe("Idle");
    expect(cond(st, "Idle")).toMatchObject({ status: "True", reason: "IdleTimeout" });
    expect(cond(st, "Ready")).toMatchObject({ status: "False", reason: "IdleTimeout" });
    expect(st.idleSince).toBe(new Date(T0 + 10 * MIN).toISOString());
    expect(st.serverURL).toBeUndefined();
    expect(st.livySessionId).toBeUndefined();
    expect(plan.deleteLivySession).toEqual({ url: SERVER_URL, id: 7, auth: undefined });
    // one DELETE: the Service and ConfigMap hold no pod and stay for the wake (removeServer)
    expect(plan.deleteOwned).toEqual(["deployment"]);
    expect(plan.metrics?.idleTeardown).toBe(true);
  });

  it("a wake applies only the Deployment: what the idle teardown kept is up to date", () => {
    const idle = statusOf(readyAt(T0 + 10 * MIN).plan);
    const ls = resource(
      { idleTimeout: "10m" },
      { status: idle, annotations: { "livy.dev/demanded-at": "2026-03-01T13:00:00Z" } },
    );
    const kept = serverOf(ls, "available");
    kept.deployment = undefined;
    const { plan } = step(world(ls, { owned: kept, now: T0 + 60 * MIN }));
    expect(plan.apply?.map((a) => a.kind)).toEqual(["deployment"]);
    expect(plan.deleteOwned).toBeUndefined();
  });

  it("a NetworkPolicy kept while parked goes at the wake when the operator no longer makes them", () => {
    const ls = resource();
    const withPolicy = serverOf(ls, "available", { ...SETTINGS, networkPolicy: true });
    expect(withPolicy.networkPolicy).toBeDefined();
    const { plan } = step(world(ls, { owned: withPolicy }));
    expect(plan.deleteOwned).toEqual(["networkPolicy"]);
    expect(plan.apply).toBeUndefined();
  });

  it("never idles out with idleTimeout 0", () => {
    const st = readyStatus({ idleTimeout: "0" });
    const { plan } = step(
      world(resource({ idleTimeout: "0" }, { status: st }), { server: "available", now: T0 + 1_000 * MIN }),
      { session: ok(livySession(7, "idle")) },
    );
    expect(phase(statusOf(plan))).toBe("Ready");
  });

  it("finishes a teardown cut short (Livy session already deleted, record not yet written)", () => {
    const { plan } = step(
      world(resource({ idleTimeout: "10m" }, { status: ready }), { server: "available", now: T0 + 11 * MIN }),
      { session: failed("gone") },
    );
    expect(phase(statusOf(plan))).toBe("Idle");
  });

  it("keeps a parked session parked: nothing runs, the record is left alone", () => {
    const idle = statusOf(readyAt(T0 + 10 * MIN).plan);
    const ls = resource({ idleTimeout: "10m" }, { status: idle });
    const { plan } = step(world(ls, { owned: serverOf(ls, "available") }));
    expect(plan.status).toBeUndefined();
    expect(plan.deleteOwned).toEqual(["deployment"]);
    const kept = serverOf(ls, "available");
    kept.deployment = undefined;
    expect(step(world(ls, { owned: kept })).plan, "the Service and ConfigMap stay").toEqual({});
    expect(step(world(ls)).plan).toEqual({});
  });

  it("wakes on a new demand annotation: a new attempt", () => {
    const idle = statusOf(readyAt(T0 + 10 * MIN).plan);
    const ls = resource(
      { idleTimeout: "10m" },
      { status: idle, annotations: { "livy.dev/demanded-at": "2026-03-01T13:00:00Z" } },
    );
    const { plan } = step(world(ls, { server: "progressing", now: T0 + 60 * MIN }));
    const st = statusOf(plan);
    expect(cond(st, "Idle")).toMatchObject({ status: "False", reason: "Demanded" });
    expect(st.demandedAt).toBe("2026-03-01T13:00:00Z");
    expect(st.startTime).toBe(new Date(T0 + 60 * MIN).toISOString());
    expect(phase(st)).toBe("Starting");
  });

  it("counts a demand on a Ready session as activity", () => {
    const ls = resource(
      { idleTimeout: "10m" },
      { status: ready, annotations: { "livy.dev/demanded-at": "x" } },
    );
    const { plan } = step(world(ls, { server: "available", now: T0 + 9 * MIN }), {
      session: ok(livySession(7, "idle")),
    });
    expect(statusOf(plan).lastActivityTime).toBe(new Date(T0 + 9 * MIN).toISOString());
  });

  it("suspends: Livy session and server removed, Suspended", () => {
    const { plan } = step(
      world(resource({ suspend: true }, { status: ready }), { server: "available", now: T0 + S }),
    );
    const st = statusOf(plan);
    expect(phase(st)).toBe("Suspended");
    expect(cond(st, "Idle")).toMatchObject({ status: "True", reason: "Suspended" });
    expect(plan.deleteLivySession?.id).toBe(7);
    expect(plan.deleteOwned).toEqual(["deployment"]);
  });

  it("a suspended session declared so deploys nothing", () => {
    const { plan } = step(world(resource({ suspend: true })));
    expect(phase(statusOf(plan))).toBe("Suspended");
    expect(plan.apply).toBeUndefined();
    expect(plan.deleteOwned).toBeUndefined();
  });

  it("restarts a parked session when its spec changes", () => {
    const idle = statusOf(readyAt(T0 + 10 * MIN).plan);
    const ls = resource({ idleTimeout: "20m" }, { status: idle, generation: 2 });
    const { plan } = step(world(ls, { server: "progressing", now: T0 + 30 * MIN }));
    expect(cond(statusOf(plan), "Idle")).toMatchObject({ status: "False", reason: "SpecChanged" });
  });
});

describe("decide: failures", () => {
  const readyWorld = (spec: Record<string, unknown> = {}, now = T0 + 10 * S) =>
    world(resource(spec, { status: readyStatus(spec) }), { server: "available", now });

  it("FailFast: a dead Livy session fails at once, with the last lines of its log", () => {
    const { plan } = step(readyWorld(), {
      session: ok(livySession(7, "dead", { log: ["a", "b", "Traceback: boom"] })),
    });
    const st = statusOf(plan);
    expect(phase(st)).toBe("Failed");
    expect(cond(st, "Ready")).toMatchObject({ reason: "SessionDead" });
    expect(st.message).toMatch(/Livy session 7 is dead; last log lines:\na\nb\nTraceback: boom/);
    expect(st.livySessionState).toBe("dead");
    expect(st.sessionURL).toBeUndefined();
    expect(plan.deleteLivySession?.id).toBe(7);
    expect(plan.deleteOwned).toHaveLength(3);
    expect(plan.events?.map((e) => [e.type, e.reason])).toEqual([["Warning", "Failed"]]);
  });

  it("FailFast: Livy forgetting the session (404) before the idle deadline is SessionLost", () => {
    const { plan } = step(readyWorld(), { session: failed("gone") });
    expect(cond(statusOf(plan), "Ready")?.reason).toBe("SessionLost");
  });

  it("FailFast: the Livy server's pod deleted under a Ready session is SessionLost at once, Livy not asked", () => {
    const ls = resource({}, { status: readyStatus() });
    const deleting = {
      metadata: {
        name: "livy-ws-1",
        creationTimestamp: new Date(T0 - MIN).toISOString(),
        deletionTimestamp: new Date(T0 + 9 * S).toISOString(),
      },
      status: {
        phase: "Running",
        containerStatuses: [
          { name: "livy", state: { running: { startedAt: new Date(T0 - MIN).toISOString() } } },
        ],
      },
    };
    const first = decide(world(ls, { server: "available", now: T0 + 10 * S, pods: [deleting] }));
    expect("plan" in first, "decided from the pod, without asking Livy").toBe(true);
    const { plan } = step(world(ls, { server: "available", now: T0 + 10 * S, pods: [deleting] }));
    const st = statusOf(plan);
    expect(phase(st)).toBe("Failed");
    expect(cond(st, "Ready")).toMatchObject({ status: "False", reason: "SessionLost" });
    expect(st.message).toBe(
      "SessionLost: the Livy server's pod livy-ws-1 is being deleted: Livy session 7 went with it",
    );
    expect(plan.deleteOwned).toHaveLength(3);
  });

  it("the pods of a starting session, or of a Ready one still running, decide nothing by themselves", () => {
    const running = {
      metadata: { name: "livy-ws-1", creationTimestamp: new Date(T0 - MIN).toISOString() },
      status: {
        phase: "Running",
        containerStatuses: [
          { name: "livy", state: { running: { startedAt: new Date(T0 - MIN).toISOString() } } },
        ],
      },
    };
    const ready = resource({}, { status: readyStatus() });
    const { plan } = step(world(ready, { server: "available", now: T0 + 10 * S, pods: [running] }), {
      session: ok(livySession(7, "idle")),
    });
    expect(phase(statusOf(plan))).toBe("Ready");
    // an attempt not yet Ready has no time to judge a pod by: Livy's answers decide
    const create = step(world(resource(), { server: "available" }), { session: ok(null) }).plan;
    const starting = resource({}, { status: statusOf(create) });
    const replaced = {
      ...running,
      metadata: { ...running.metadata, deletionTimestamp: new Date(T0).toISOString() },
    };
    const second = decide(world(starting, { server: "available", now: T0 + S, pods: [replaced] }));
    expect("observe" in second).toBe(true);
  });

  it("Recover: the Livy server's container restarted under a Ready session: a new Livy session on the same server", () => {
    const spec = { failurePolicy: "Recover" };
    const ls = resource(spec, { status: readyStatus(spec) });
    const restarted = {
      metadata: { name: "livy-ws-1", creationTimestamp: new Date(T0 - MIN).toISOString() },
      status: {
        phase: "Running",
        containerStatuses: [
          {
            name: "livy",
            restartCount: 1,
            state: { running: { startedAt: new Date(T0 + 5 * S).toISOString() } },
            lastState: { terminated: { exitCode: 137, reason: "OOMKilled" } },
          },
        ],
      },
    };
    const { plan } = step(world(ls, { server: "available", now: T0 + 10 * S, pods: [restarted] }));
    const st = statusOf(plan);
    expect(cond(st, "Ready")).toMatchObject({ reason: "Recovering" });
    expect(cond(st, "SessionReady")?.message).toBe(
      "the Livy server's container in pod livy-ws-1 stopped (exit 137, OOMKilled): Livy session 7 went with it",
    );
    expect(st.restarts).toBe(1);
    expect(plan.deleteOwned, "the server stays: its pod comes back by itself").toBeUndefined();
  });

  it("Recover: a dead session is replaced on the same server after 1 s, counted", () => {
    const spec = { failurePolicy: "Recover" };
    const { plan } = step(readyWorld(spec), { session: ok(livySession(7, "dead")) });
    const st = statusOf(plan);
    expect(phase(st)).toBe("Starting");
    expect(cond(st, "Ready")).toMatchObject({ reason: "Recovering" });
    expect(st.restarts).toBe(1);
    expect(st.startTime).toBe(new Date(T0 + 11 * S).toISOString());
    expect(plan.requeueAfterMs).toBe(S);
    expect(plan.deleteLivySession?.id).toBe(7);
    expect(plan.deleteOwned, "the server stays").toBeUndefined();
    expect(plan.events?.map((e) => [e.type, e.reason])).toEqual([
      ["Warning", "SessionDead"],
      ["Warning", "Starting"],
    ]);
  });

  it("Recover: backs off exponentially and gives up after maxRestarts", () => {
    const spec = { failurePolicy: "Recover", maxRestarts: 2 };
    const at = (restarts: number) =>
      step(
        world(resource(spec, { status: { ...readyStatus(spec), restarts } }), {
          server: "available",
          now: T0 + 10 * S,
        }),
        { session: ok(livySession(7, "dead")) },
      ).plan;
    expect(at(1).requeueAfterMs).toBe(2 * S);
    const gaveUp = statusOf(at(2));
    expect(phase(gaveUp)).toBe("Failed");
    expect(cond(gaveUp, "Ready")).toMatchObject({ reason: "RestartLimitReached" });
    expect(gaveUp.message).toMatch(/^RestartLimitReached: 2 restarts, then SessionDead/);
  });

  it("Recover: during the backoff, waits; a server left behind by a killed pass goes", () => {
    const spec = { failurePolicy: "Recover" };
    const lost = {
      ...readyWorld(spec),
      memory: { livyFailures: { since: T0 - 20 * S, count: 5, last: "refused" } },
    };
    const recovering = statusOf(step(lost, { session: failed("unreachable") }).plan);
    const ls = resource(spec, { status: recovering });
    const { plan } = step(world(ls, { server: "available", now: T0 + 10 * S + 200 }));
    expect(plan.requeueAfterMs).toBe(800);
    expect(plan.deleteOwned).toEqual(["deployment", "service", "configMap"]);
  });

  it.each([
    ["CrashLoopBackOff", "CrashLooping"],
    ["ImagePullBackOff", "ImagePullFailed"],
    ["CreateContainerConfigError", "ContainerConfigError"],
  ])("FailFast: a pod in %s fails the session with %s", (waiting, reason) => {
    const ls = resource();
    const { plan } = step(
      world(ls, {
        server: "progressing",
        pods: [
          {
            metadata: { name: "p" },
            status: { containerStatuses: [{ name: "livy", state: { waiting: { reason: waiting } } }] },
          },
        ],
      }),
    );
    const st = statusOf(plan);
    expect(phase(st)).toBe("Failed");
    expect(cond(st, "Ready")?.reason).toBe(reason);
    expect(cond(st, "ServerReady")?.reason).toBe(reason);
  });

  it("Recover: waits for an unschedulable pod until startupTimeout, reporting why", () => {
    const spec = { failurePolicy: "Recover", startupTimeout: "10s" };
    const pods = [
      {
        metadata: { name: "p" },
        status: {
          conditions: [
            { type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/1 nodes" },
          ],
        },
      },
    ];
    const first = step(world(resource(spec), { server: "progressing", pods })).plan;
    const st = statusOf(first);
    expect(cond(st, "ServerReady")).toMatchObject({ reason: "Unschedulable", message: "0/1 nodes" });
    expect(cond(st, "Ready")).toMatchObject({ reason: "Starting" });
    expect(first.deleteOwned).toBeUndefined();
    const later = step(
      world(resource(spec, { status: st }), { server: "progressing", pods, now: T0 + 11 * S }),
    ).plan;
    expect(cond(statusOf(later), "Ready")).toMatchObject({ reason: "Recovering" });
    expect(statusOf(later).message).toMatch(
      /StartupTimeout: not Ready within 10s: Unschedulable: 0\/1 nodes/,
    );
  });

  it("a spec whose objects the API server refuses is InvalidSpec, not retried even under Recover", () => {
    const spec = { failurePolicy: "Recover" };
    const ls = resource(spec);
    const { plan } = step(
      world(ls, { owned: serverOf(ls, "progressing"), refused: "the API server refused: too long" }),
    );
    const st = statusOf(plan);
    expect(phase(st)).toBe("Failed");
    expect(cond(st, "Ready")).toMatchObject({
      reason: "InvalidSpec",
      message: "the API server refused: too long",
    });
    expect(plan.deleteOwned).toHaveLength(3);
    expect(plan.requeueAfterMs).toBeUndefined();
  });

  it("a Failed session stays parked until a new demand", () => {
    const failedSt = statusOf(step(readyWorld(), { session: ok(livySession(7, "dead")) }).plan);
    const { plan } = step(world(resource({}, { status: failedSt }), { now: T0 + MIN }));
    expect(plan).toEqual({});
    const demanded = resource({}, { status: failedSt, annotations: { "livy.dev/demanded-at": "now" } });
    const again = step(world(demanded, { server: "progressing", now: T0 + MIN })).plan;
    expect(phase(statusOf(again))).toBe("Starting");
    expect(statusOf(again).restarts).toBe(0);
  });
});

describe("decide: deletion", () => {
  const deleting = (now = T0 + S, owned?: OwnedObjects) => {
    const ls = resource({}, { status: readyStatus(), deleting: true });
    return world(ls, { now, ...(owned ? { owned } : { server: "available" }) });
  };

  it("asks Livy for the session, deletes it, and looks again", () => {
    const { plan, query } = step(deleting(), { session: ok(livySession(7, "idle")) });
    expect(query).toEqual({
      url: SERVER_URL,
      auth: undefined,
      sessionId: 7,
      activity: false,
      owner: { namespace: "data", name: "ws" },
    });
    expect(plan.deleteLivySession).toEqual({ url: SERVER_URL, id: 7, auth: undefined });
    expect(plan.finalizer).toBeUndefined();
    expect(plan.requeueAfterMs).toBe(0);
  });

  it("removes the finalizer once Livy no longer knows the session", () => {
    const { plan } = step(deleting(), { session: failed("gone") });
    expect(plan.finalizer).toBe("remove");
    expect(plan.deleteLivySession).toBeUndefined();
  });

  it.each([
    ["unreachable", failed("unreachable", "connect ECONNREFUSED")],
    ["answering errors", failed("http", "HTTP 500", { status: 500 })],
  ])("keeps the finalizer while Livy is %s: Deleting, a Warning event, retried with backoff", (_, answer) => {
    const { plan } = step(deleting(), { session: answer });
    expect(plan.finalizer).toBeUndefined();
    const st = statusOf(plan);
    expect(cond(st, "Ready")).toMatchObject({ status: "False", reason: "Deleting" });
    expect(cond(st, "Ready")?.message).toMatch(/Livy session 7/);
    expect(plan.events).toContainEqual(
      expect.objectContaining({ type: "Warning", reason: "LivySessionNotDeleted" }),
    );
    expect(plan.memory?.deleteAttempts).toBe(1);
    expect(plan.requeueAfterMs).toBeGreaterThanOrEqual(500);
    expect(plan.requeueAfterMs).toBeLessThanOrEqual(1_000);
    const later = step({ ...deleting(), memory: { deleteAttempts: 6 } }, { session: answer }).plan;
    expect(later.requeueAfterMs).toBeGreaterThanOrEqual(30_000);
    expect(later.requeueAfterMs).toBeLessThanOrEqual(60_000);
  });

  it("keeps the finalizer when Livy still shows the session after the delete", () => {
    const { plan } = step(
      { ...deleting(), memory: { deleteAttempts: 1 } },
      {
        session: ok(livySession(7, "idle")),
      },
    );
    expect(plan.deleteLivySession?.id).toBe(7);
    expect(plan.finalizer).toBeUndefined();
    expect(plan.requeueAfterMs).toBeGreaterThan(0);
  });

  it("removes the finalizer when the server is gone: nothing can hold a Spark driver", () => {
    const { plan } = step(deleting(T0 + S, {}), { session: failed("unreachable") });
    expect(plan.finalizer).toBe("remove");
  });

  it("removes the finalizer at once when no id is recorded and the server neither answers nor has an available pod", () => {
    const deploying = statusOf(step(world(resource(), { server: "progressing" })).plan);
    const ls = resource({}, { status: deploying, deleting: true });
    const pending = step(world(ls, { server: "progressing", now: T0 + S }), {
      session: failed("unreachable", "connect ECONNREFUSED"),
    });
    expect(pending.query?.sessionName, "looked up by name at the recorded URL").toBeDefined();
    expect(pending.plan.finalizer).toBe("remove");
    // a server with an available pod that does not answer may still hold the session: wait for it
    const up = step(world(ls, { server: "available", now: T0 + S }), { session: failed("timeout") });
    expect(up.plan.finalizer).toBeUndefined();
    expect(up.plan.requeueAfterMs).toBeGreaterThan(0);
  });

  it("gives up after a while, saying so: a deletion never hangs for good", () => {
    const { plan } = step(deleting(T0 + 11 * MIN), { session: failed("timeout") });
    expect(plan.finalizer).toBe("remove");
    expect(plan.events).toContainEqual(
      expect.objectContaining({ type: "Warning", reason: "LivySessionAbandoned" }),
    );
  });

  it("removes only the finalizer when there is no Livy session", () => {
    const { plan } = step(world(resource({}, { deleting: true })));
    expect(plan.deleteLivySession).toBeUndefined();
    expect(plan.finalizer).toBe("remove");
  });

  it("does nothing once the finalizer is gone", () => {
    expect(decide(world(resource({}, { deleting: true, finalizers: [] })))).toEqual({ plan: {} });
    expect(FINALIZER).toBe("livy.dev/finalizer");
  });
});

describe("decide: spec changes on a Ready session", () => {
  const spec = { idleTimeout: "1h", server: { podAnnotations: { team: "a" } } };
  const ready = readyStatus(spec);
  const liveOf = (
    s: Record<string, unknown>,
    state: "available" | "unavailable" | "progressing" = "available",
  ) => serverOf(resource(s), state);

  it("a spec.server edit rolls the server under a Restarting condition; a new Livy session follows", () => {
    const edited = { ...spec, server: { podAnnotations: { team: "b" } } };
    const ls = resource(edited, { status: ready, generation: 2 });
    const { plan } = step(world(ls, { owned: liveOf(spec), now: T0 + MIN }), {
      session: ok(livySession(7, "idle")),
    });
    const st = statusOf(plan);
    expect(phase(st)).toBe("Starting");
    expect(cond(st, "Ready")).toMatchObject({ status: "False", reason: "Restarting" });
    expect(cond(st, "Ready")?.message).toMatch(/spec\.server changed.*Livy session 7/);
    expect(cond(st, "ServerReady")).toMatchObject({ status: "False", reason: "Restarting" });
    expect(cond(st, "SessionReady")).toMatchObject({ status: "False", reason: "Restarting" });
    expect(st.livySessionId).toBeUndefined();
    expect(st.startTime).toBe(new Date(T0 + MIN).toISOString());
    expect(st.restarts).toBe(0);
    expect(plan.deleteLivySession).toEqual({ url: SERVER_URL, id: 7, auth: undefined });
    expect(plan.apply?.map((a) => a.kind)).toEqual(["deployment"]);
    expect(plan.deleteOwned).toBeUndefined();
    expect(plan.events?.map((e) => e.reason)).toContain("Restarting");
  });

  it("reads its own rollout as the restart it is, not as a lost server", () => {
    const edited = { ...spec, server: { podAnnotations: { team: "b" } } };
    const rolling = statusOf(
      step(
        world(resource(edited, { status: ready, generation: 2 }), { owned: liveOf(spec), now: T0 + MIN }),
        {
          session: ok(livySession(7, "idle")),
        },
      ).plan,
    );
    const owned = liveOf(edited);
    if (owned.deployment) owned.deployment.status = { observedGeneration: 0, availableReplicas: 1 };
    const { plan } = step(
      world(resource(edited, { status: rolling, generation: 2 }), { owned, now: T0 + MIN + S }),
    );
    const st = statusOf(plan);
    expect(phase(st)).toBe("Starting");
    expect(cond(st, "Ready")?.reason).toBe("Restarting");
    expect(cond(st, "ServerReady")?.reason).toBe("Deploying");
    expect(plan.deleteOwned).toBeUndefined();
  });

  it("a spec.session edit replaces the Livy session on the same server", () => {
    const s1 = { ...spec, session: { driverMemory: "1g" } };
    const s2 = { ...spec, session: { driverMemory: "2g" } };
    const name = step(world(resource(s1), { server: "available" }), { session: ok(null) }).plan
      .createLivySession?.body.name;
    const { plan } = step(
      world(resource(s2, { status: readyStatus(s1), generation: 2 }), { owned: liveOf(s1), now: T0 + MIN }),
      { session: ok(livySession(7, "idle", { name })) },
    );
    const st = statusOf(plan);
    expect(cond(st, "Ready")).toMatchObject({ status: "False", reason: "Restarting" });
    expect(cond(st, "Ready")?.message).toMatch(/spec\.session or spec\.spark changed/);
    expect(cond(st, "ServerReady")?.status).toBe("True");
    expect(plan.deleteLivySession?.id).toBe(7);
    expect(plan.apply).toBeUndefined();
    expect(plan.deleteOwned).toBeUndefined();
  });

  it.each([
    ["idleTimeout", { ...spec, idleTimeout: "2h" }, {}],
    ["startupTimeout", { ...spec, startupTimeout: "10m" }, {}],
    ["a label or annotation on the LivySession", spec, { annotations: { note: "x" } }],
  ])("a change that needs no restart (%s) restarts nothing", (_, edited, opts) => {
    const ls = resource(edited, { status: ready, generation: 2, ...opts });
    const { plan } = step(world(ls, { owned: liveOf(spec), now: T0 + MIN }), {
      session: ok(livySession(7, "idle")),
    });
    const st = statusOf(plan);
    expect(phase(st)).toBe("Ready");
    expect(st.livySessionId).toBe(7);
    expect(plan.deleteLivySession).toBeUndefined();
    expect(plan.apply).toBeUndefined();
    expect(plan.deleteOwned).toBeUndefined();
  });

  it.each([
    ["its pod not ready (node not ready after a control-plane outage)", "unavailable"],
    ["a rollout someone else started", "progressing"],
  ] as const)("a Deployment without an available pod (%s) is not a lost server: Livy decides", (_, state) => {
    const ls = resource(spec, { status: ready });
    const { plan } = step(world(ls, { owned: liveOf(spec, state), now: T0 + MIN }), {
      session: ok(livySession(7, "idle")),
    });
    const st = statusOf(plan);
    expect(phase(st)).toBe("Ready");
    expect(cond(st, "ServerReady")).toMatchObject({ status: "False", reason: "ServerUnavailable" });
    expect(plan.deleteOwned).toBeUndefined();
    expect(plan.deleteLivySession).toBeUndefined();
  });

  it("the Deployment deleted from under a Ready session is ServerLost", () => {
    const ls = resource(spec, { status: ready });
    const { plan } = step(world(ls, { owned: {}, now: T0 + MIN }));
    const st = statusOf(plan);
    expect(phase(st)).toBe("Failed");
    expect(cond(st, "Ready")?.reason).toBe("ServerLost");
  });
});

describe("decide: the status never exceeds its schema", () => {
  const parses = (st: LivySessionStatus) => {
    const r = statusSchema.safeParse(st);
    expect(r.success, r.success ? "" : JSON.stringify(r.error.issues.slice(0, 3))).toBe(true);
  };

  it("records a demanded-at annotation longer than status.demandedAt as a digest, and serves it once", () => {
    const long = "x".repeat(100);
    const ready = readyStatus();
    const ls = resource({}, { status: ready, annotations: { "livy.dev/demanded-at": long } });
    const first = statusOf(
      step(world(ls, { server: "available", now: T0 + S }), { session: ok(livySession(7, "idle")) }).plan,
    );
    parses(first);
    expect(first.demandedAt).toBe(demandToken(long));
    expect(first.lastActivityTime).toBe(new Date(T0 + S).toISOString());
    // the next step reads the recorded demand as served: no new activity, nothing written
    const again = resource({}, { status: first, annotations: { "livy.dev/demanded-at": long } });
    const { plan } = step(world(again, { server: "available", now: T0 + 2 * S }), {
      session: ok(livySession(7, "idle")),
    });
    expect(plan.status).toEqual(first);
  });

  it("cuts what it copies from Livy: a huge state, log lines, error messages", () => {
    const huge = "é".repeat(100_000);
    const dead = step(world(resource({}, { status: readyStatus() }), { server: "available", now: T0 + S }), {
      session: ok(livySession(7, `dead${huge}`, { log: [huge, huge, huge, huge, huge, huge] })),
    }).plan;
    parses(statusOf(dead));
    expect(JSON.stringify(statusOf(dead)).length).toBeLessThan(16_384);
    const starting = step(world(resource(), { server: "available" }), { session: failed("http", huge) }).plan;
    parses(statusOf(starting));
    const refused = step(world(resource(), { server: "progressing", refused: huge })).plan;
    parses(statusOf(refused));
  });

  it("refuses a Livy session id outside the schema's range as not Livy's protocol", () => {
    const { plan } = step(world(resource(), { server: "available" }), {
      session: ok(livySession(2 ** 40, "starting")),
    });
    const st = statusOf(plan);
    parses(st);
    expect(st.livySessionId).toBeUndefined();
    expect(cond(st, "SessionReady")).toMatchObject({ reason: "LivyError" });
    expect(cond(st, "SessionReady")?.message).toMatch(/id 1099511627776/);
  });
});

describe("decide: the auth Secret", () => {
  const spec = { auth: { type: "Bearer", secretName: "nope" }, startupTimeout: "5s" };
  const missing = { state: "invalid" as const, message: "Secret nope not found" };

  it("waits for it no longer than startupTimeout: then Failed, naming it, server removed", () => {
    const first = step(world(resource(spec), { server: "available", auth: missing })).plan;
    expect(first.requeueAfterMs).toBeLessThanOrEqual(5 * S);
    const { plan } = step(
      world(resource(spec, { status: statusOf(first) }), {
        server: "available",
        auth: missing,
        now: T0 + 6 * S,
      }),
    );
    const st = statusOf(plan);
    expect(phase(st)).toBe("Failed");
    expect(cond(st, "Ready")).toMatchObject({ reason: "StartupTimeout" });
    expect(cond(st, "Ready")?.message).toMatch(
      /not Ready within 5s: AuthSecretInvalid: Secret nope not found/,
    );
    expect(plan.deleteOwned).toHaveLength(3);
  });

  it("looks again at the deadline when it comes before the next look", () => {
    const first = step(world(resource(spec), { server: "available", auth: missing })).plan;
    const { plan } = step(
      world(resource(spec, { status: statusOf(first) }), {
        server: "available",
        auth: missing,
        now: T0 + 4_500,
      }),
    );
    expect(plan.requeueAfterMs).toBe(500);
  });
});

describe("decide: transient faults of a Ready session are not failures", () => {
  const ready = readyStatus({ idleTimeout: "1h" });
  const ls = resource({ idleTimeout: "1h" }, { status: ready });
  const settings = { ...SETTINGS, livyFailureThreshold: 3, livyFailureWindowMs: 15 * S };
  type Mem = ReturnType<typeof world>["memory"];
  const poll = (now: number, answer: Parameters<typeof step>[1], memory: Mem = {}) =>
    step(world(ls, { server: "available", now, settings, memory }), answer).plan;

  it.each([
    [
      "a poll timed out (a GC pause, a slow answer)",
      failed("timeout", "GET /sessions/7 timed out after 5000 ms"),
    ],
    ["a failed DNS lookup", failed("unreachable", "getaddrinfo EAI_AGAIN livy-ws.data.svc")],
    ["a 503 from a proxy", failed("http", "HTTP 503", { status: 503 })],
    ["an answer that is not Livy's", failed("protocol", "not JSON")],
  ])("one failed poll (%s) leaves it Ready, remembered", (_, answer) => {
    const plan = poll(T0 + MIN, { session: answer });
    expect(plan.status).toEqual(ready);
    expect(plan.deleteLivySession).toBeUndefined();
    expect(plan.deleteOwned).toBeUndefined();
    expect(plan.memory?.livyFailures).toMatchObject({ since: T0 + MIN, count: 1 });
    expect(plan.requeueAfterMs).toBe(SETTINGS.sessionPollIntervalMs);
  });

  it("fails only after the threshold of consecutive failures spanning the window", () => {
    let memory: Mem = {};
    const fault = { session: failed("unreachable", "connect ECONNREFUSED") };
    const times = [0, 5, 10, 15].map((s) => T0 + MIN + s * S);
    const plans = times.map((now) => {
      const plan = poll(now, fault, memory);
      memory = plan.memory ?? {};
      return plan;
    });
    // three failures within 10 s: under the 15 s window, still Ready
    for (const p of plans.slice(0, 3)) expect(phase(p.status)).toBe("Ready");
    const last = plans[3];
    expect(phase(last?.status)).toBe("Failed");
    expect(cond(last?.status, "Ready")?.reason).toBe("LivyUnreachable");
    expect(last?.status?.message).toMatch(/4 failed looks over 15s: .*ECONNREFUSED/);
    expect(last?.memory).toEqual({});
  });

  it("forgets past failures after a poll that succeeds", () => {
    const plan = poll(
      T0 + MIN,
      { session: ok(livySession(7, "idle")) },
      {
        livyFailures: { since: T0, count: 2, last: "x" },
      },
    );
    expect(plan.memory).toEqual({});
  });

  it("a Livy session Livy no longer knows (404) is lost at once: no threshold", () => {
    expect(cond(poll(T0 + MIN, { session: failed("gone") }).status, "Ready")?.reason).toBe("SessionLost");
  });

  it("a dead session fails at once: no threshold", () => {
    expect(phase(poll(T0 + MIN, { session: ok(livySession(7, "dead")) }).status)).toBe("Failed");
  });

  it("a failed activity read counts like a failed poll", () => {
    const plan = poll(T0 + MIN, { session: ok(livySession(7, "busy")), activity: failed("timeout") });
    expect(phase(plan.status)).toBe("Ready");
    expect(plan.memory?.livyFailures?.count).toBe(1);
  });

  it("an auth Secret deleted under a Ready session counts as failed looks, never asks Livy without it", () => {
    const withAuth = resource(
      { idleTimeout: "1h", auth: { type: "Bearer", secretName: "s" } },
      { status: ready },
    );
    const o = world(withAuth, {
      server: "available",
      now: T0 + MIN,
      settings,
      auth: { state: "invalid", message: "Secret s not found" },
    });
    const d = decide(o);
    expect("plan" in d && d.plan.memory?.livyFailures?.last).toMatch(/AuthSecretInvalid: Secret s not found/);
  });
});

describe("decide: a Livy session created but not yet recorded", () => {
  // the step that created the Livy session wrote the attempt (startTime, serverURL) before the POST; the
  // id is recorded by the next step, unless a failure or a deletion is seen first
  const created = step(world(resource(), { server: "available" }), { session: ok(null) }).plan;
  const name = created.createLivySession?.body.name;
  const pulling = [
    {
      metadata: { name: "p" },
      status: { containerStatuses: [{ name: "livy", state: { waiting: { reason: "ImagePullBackOff" } } }] },
    },
  ];

  it("is deleted by its name when the attempt fails before its id is recorded", () => {
    const ls = resource({}, { status: statusOf(created) });
    const { plan } = step(world(ls, { server: "progressing", pods: pulling, now: T0 + S }));
    expect(phase(statusOf(plan))).toBe("Failed");
    expect(plan.deleteLivySession).toEqual({ url: SERVER_URL, name, auth: undefined });
  });

  it("is looked up by its name and deleted when the LivySession is deleted before its id is recorded", () => {
    const ls = resource({}, { status: statusOf(created), deleting: true });
    const first = step(world(ls, { server: "available", now: T0 + S }), {
      session: ok(livySession(4, "starting", { name })),
    });
    expect(first.query?.sessionName).toBe(name);
    expect(first.plan.deleteLivySession).toEqual({ url: SERVER_URL, id: 4, auth: undefined });
    expect(first.plan.finalizer).toBeUndefined();
    const none = step(world(ls, { server: "available", now: T0 + S }), { session: ok(null) });
    expect(none.plan.finalizer).toBe("remove");
  });
});

describe("decide: warm-up before Ready (spec.warmup)", () => {
  /** The attempt recorded and its Livy session 7 created: the status of the step after the POST. */
  const started = (spec: Record<string, unknown> = {}) =>
    resource(spec, {
      status: statusOf(step(world(resource(spec), { server: "available" }), { session: ok(null) }).plan),
    });
  const code = DEFAULT_WARMUP_CODE.pyspark;

  it("submits the warm-up statement once the session is idle, and is not Ready until it ran", () => {
    const { plan, query } = step(world(started(), { server: "available", now: T0 + 20 * S }), {
      session: ok(livySession(7, "idle")),
      warmup: ok(null),
    });
    expect(query?.warmup).toEqual({ code });
    expect(plan.submitWarmup).toEqual({ url: SERVER_URL, auth: undefined, sessionId: 7, code });
    // submitted before any status write and looked at again at once: the next step records WarmingUp, or
    // Ready when it has ended by then (one status write, no poll between its end and Ready)
    expect(plan.status, "no status write before the submission").toBeUndefined();
    expect(plan.requeueAfterMs).toBe(0);
    expect(plan.memory).toEqual({ warmupSubmitted: "7/data.ws.x.0" });
    expect(plan.metrics?.demandToReadySeconds).toBeUndefined();
    // the step right after: still waiting or running → WarmingUp, polled
    const next = step(
      world(started(), { server: "available", now: T0 + 20 * S, memory: plan.memory ?? {} }),
      {
        session: ok(livySession(7, "busy")),
        warmup: ok(statement(0, code, { state: "waiting", output: null })),
      },
    ).plan;
    const st = statusOf(next);
    expect(phase(st)).toBe("Starting");
    expect(cond(st, "Ready")).toMatchObject({ status: "False", reason: "WarmingUp" });
    expect(cond(st, "SessionReady")).toMatchObject({ status: "True", reason: "SessionBusy" });
    expect(st.readyTime).toBeUndefined();
    expect(st.sessionURL).toBe(`${SERVER_URL}/sessions/7`);
    expect(next.submitWarmup).toBeUndefined();
    expect(next.requeueAfterMs).toBe(STARTING_POLL_MS);
    // or it has ended: Ready in the same step
    const ended = step(
      world(started(), { server: "available", now: T0 + 20 * S, memory: plan.memory ?? {} }),
      { session: ok(livySession(7, "idle")), warmup: ok(statement(0, code)) },
    ).plan;
    expect(phase(statusOf(ended))).toBe("Ready");
  });

  it("submits the warm-up without searching for it at the first usable look after seeing the session starting", () => {
    const name = step(world(resource(), { server: "available" }), { session: ok(null) }).plan
      .createLivySession?.body.name;
    const seen = step(world(started(), { server: "available", now: T0 + S }), {
      session: ok(livySession(7, "starting", { name })),
    }).plan;
    expect(seen.memory?.sawStarting).toBe(`7/${name}`);
    const recorded = resource({}, { status: statusOf(seen) });
    const later = { server: "available" as const, now: T0 + 2 * S };
    const { plan, query } = step(world(recorded, { ...later, memory: seen.memory ?? {} }), {
      session: ok(livySession(7, "idle", { name })),
    });
    expect(query?.warmup, "nothing can have submitted it since it was starting").toBeUndefined();
    expect(query?.activity).toBe(false);
    expect(plan.submitWarmup).toEqual({ url: SERVER_URL, auth: undefined, sessionId: 7, code });
    expect(plan.memory).toEqual({ warmupSubmitted: `7/${name}` });
    expect(plan.requeueAfterMs).toBe(0);
    // still starting at that look: polled as before
    const still = step(world(recorded, { ...later, memory: seen.memory ?? {} }), {
      session: ok(livySession(7, "starting", { name })),
    }).plan;
    expect(still.submitWarmup).toBeUndefined();
    expect(still.requeueAfterMs).toBe(STARTING_POLL_MS);
    // not seen starting by this operator (restarted since): searched for first, and found, not submitted again
    const fresh = step(world(recorded, later), {
      session: ok(livySession(7, "idle", { name })),
      warmup: ok(statement(0, code)),
    });
    expect(fresh.query?.warmup).toEqual({ code });
    expect(fresh.plan.submitWarmup).toBeUndefined();
    expect(phase(statusOf(fresh.plan))).toBe("Ready");
  });

  it("submitted and not listed yet at the look right after: submitted again with WarmingUp a poll later, never in a tight loop", () => {
    const { plan } = step(
      world(started(), {
        server: "available",
        now: T0 + 20 * S,
        memory: { warmupSubmitted: "7/data.ws.x.0" },
      }),
      { session: ok(livySession(7, "idle")), warmup: ok(null) },
    );
    expect(plan.submitWarmup?.sessionId).toBe(7);
    expect(cond(statusOf(plan), "Ready")).toMatchObject({ status: "False", reason: "WarmingUp" });
    expect(plan.requeueAfterMs).toBe(STARTING_POLL_MS);
    // a Livy session of a later attempt (the same id on a new server) gets the fast look again
    const next = step(
      world(started(), { server: "available", memory: { warmupSubmitted: "7/data.ws.x.0" } }),
      { session: ok(livySession(7, "idle", { name: "data.ws.y.0" })), warmup: ok(null) },
    );
    expect(next.plan.requeueAfterMs).toBe(0);
    expect(next.plan.status).toBeUndefined();
  });

  it("ended, but the session read busy at the look right after its submission: one more look at once, then Ready as Livy says", () => {
    const memory = { warmupSubmitted: "7/data.ws.x.0" };
    const { plan } = step(world(started(), { server: "available", memory }), {
      session: ok(livySession(7, "busy")),
      warmup: ok(statement(0, code)),
    });
    expect(plan.status, "not Ready as busy").toBeUndefined();
    expect(plan.requeueAfterMs).toBe(0);
    expect(plan.memory).toEqual({ warmupSubmitted: "7/data.ws.x.0/ended" });
    // idle now: Ready, idle
    const idle = step(world(started(), { server: "available", memory: plan.memory ?? {} }), {
      session: ok(livySession(7, "idle")),
      warmup: ok(statement(0, code)),
    }).plan;
    expect(phase(statusOf(idle))).toBe("Ready");
    expect(statusOf(idle).livySessionState).toBe("idle");
    // still busy (something else runs): Ready, busy; no further look at once
    const busy = step(world(started(), { server: "available", memory: plan.memory ?? {} }), {
      session: ok(livySession(7, "busy")),
      warmup: ok(statement(0, code)),
    }).plan;
    expect(phase(statusOf(busy))).toBe("Ready");
    expect(cond(statusOf(busy), "SessionReady")?.reason).toBe("SessionBusy");
    // a look without that memory (a restarted operator) does not wait either
    const fresh = step(world(started(), { server: "available" }), {
      session: ok(livySession(7, "busy")),
      warmup: ok(statement(0, code)),
    }).plan;
    expect(phase(statusOf(fresh))).toBe("Ready");
  });

  it("a running warm-up is polled as tightly as a starting session, spread over all starting at once", () => {
    const running = { ...world(started(), { server: "available" }), starting: 2_000 };
    const { plan } = step(running, {
      session: ok(livySession(7, "busy")),
      warmup: ok(statement(0, code, { state: "running", output: null, completed: 0 })),
    });
    expect(plan.requeueAfterMs).toBe(startingPollMs(2_000, SETTINGS.sessionPollIntervalMs));
    expect(plan.requeueAfterMs).toBeGreaterThan(STARTING_POLL_MS);
  });

  it("waits while it runs, without submitting it again (found by its code: a killed pass adopts it)", () => {
    const { plan } = step(world(started(), { server: "available", now: T0 + 21 * S }), {
      session: ok(livySession(7, "busy")),
      warmup: ok(statement(0, code, { state: "running", output: null, completed: 0 })),
    });
    expect(plan.submitWarmup).toBeUndefined();
    const st = statusOf(plan);
    expect(cond(st, "Ready")).toMatchObject({ status: "False", reason: "WarmingUp" });
    expect(cond(st, "Ready")?.message).toMatch(/warm-up statement 0 \(running\)/);
    expect(cond(st, "SessionReady")).toMatchObject({ status: "True", reason: "SessionBusy" });
    expect(plan.requeueAfterMs).toBe(STARTING_POLL_MS);
  });

  it("`available` without its output yet is still running (Livy reports it so for a moment)", () => {
    const { plan } = step(world(started(), { server: "available" }), {
      session: ok(livySession(7, "idle")),
      warmup: ok(statement(0, code, { output: null })),
    });
    expect(cond(statusOf(plan), "Ready")?.reason).toBe("WarmingUp");
  });

  it("is Ready once it ran: readyTime and the demand-to-Ready figure count the warm-up", () => {
    const { plan } = step(world(started(), { server: "available", now: T0 + 30 * S }), {
      session: ok(livySession(7, "idle")),
      warmup: ok(statement(0, code)),
    });
    const st = statusOf(plan);
    expect(phase(st)).toBe("Ready");
    expect(st.readyTime).toBe(new Date(T0 + 30 * S).toISOString());
    expect(plan.metrics?.demandToReadySeconds).toBe(30);
    expect(plan.submitWarmup).toBeUndefined();
  });

  it("asks no more once Ready: a restarted operator does not warm a Ready session again", () => {
    const { query } = step(world(resource({}, { status: readyStatus() }), { server: "available" }), {
      session: ok(livySession(7, "idle")),
    });
    expect(query?.warmup).toBeUndefined();
  });

  it("FailFast: an error in the warm-up is WarmupFailed with Livy's error, the server removed", () => {
    const { plan } = step(world(started(), { server: "available" }), {
      session: ok(livySession(7, "idle")),
      warmup: ok(
        statement(0, code, {
          output: {
            status: "error",
            execution_count: 0,
            ename: "NameError",
            evalue: "name 'sc' is not defined",
            traceback: [],
          },
        }),
      ),
    });
    const st = statusOf(plan);
    expect(phase(st)).toBe("Failed");
    expect(cond(st, "Ready")).toMatchObject({ status: "False", reason: "WarmupFailed" });
    expect(cond(st, "SessionReady")).toMatchObject({ status: "False", reason: "WarmupFailed" });
    expect(st.message).toMatch(
      /^WarmupFailed: warm-up statement 0 of Livy session 7 failed: NameError: name 'sc'/,
    );
    expect(plan.deleteLivySession?.id).toBe(7);
    expect(plan.deleteOwned).toHaveLength(3);
  });

  it("FailFast: a cancelled warm-up is WarmupFailed", () => {
    const { plan } = step(world(started(), { server: "available" }), {
      session: ok(livySession(7, "idle")),
      warmup: ok(statement(0, code, { state: "cancelled", output: null })),
    });
    expect(cond(statusOf(plan), "Ready")?.reason).toBe("WarmupFailed");
  });

  it("Recover: a failed warm-up opens a new Livy session on the same server after the backoff", () => {
    const spec = { failurePolicy: "Recover" };
    const { plan } = step(world(started(spec), { server: "available" }), {
      session: ok(livySession(7, "idle")),
      warmup: ok(statement(0, code, { state: "cancelled", output: null })),
    });
    const st = statusOf(plan);
    expect(cond(st, "Ready")).toMatchObject({ reason: "Recovering" });
    expect(st.restarts).toBe(1);
    expect(plan.deleteLivySession?.id).toBe(7);
    expect(plan.deleteOwned, "the server stays").toBeUndefined();
  });

  it("a warm-up still running at startupTimeout is StartupTimeout naming it", () => {
    const spec = { startupTimeout: "1m" };
    const { plan } = step(world(started(spec), { server: "available", now: T0 + 61 * S }), {
      session: ok(livySession(7, "busy")),
      warmup: ok(statement(0, code, { state: "running", output: null })),
    });
    const st = statusOf(plan);
    expect(cond(st, "Ready")?.reason).toBe("StartupTimeout");
    expect(st.message).toMatch(/warm-up not done within 1m: .*warm-up statement 0 \(running\)/);
  });

  it("past startupTimeout with no warm-up submitted: StartupTimeout, and nothing submitted to the session it deletes", () => {
    const spec = { startupTimeout: "1m" };
    for (const memory of [{}, { warmupSubmitted: "7/data.ws.x.0" }]) {
      const { plan } = step(world(started(spec), { server: "available", now: T0 + 61 * S, memory }), {
        session: ok(livySession(7, "idle")),
        warmup: ok(null),
      });
      const st = statusOf(plan);
      expect(cond(st, "Ready")?.reason).toBe("StartupTimeout");
      expect(st.message).toMatch(/warm-up not done within 1m: Livy session 7 had not started its warm-up/);
      expect(plan.deleteLivySession?.id).toBe(7);
      expect(plan.submitWarmup).toBeUndefined();
    }
  });

  it("a failed look for the warm-up before Ready is retried until startupTimeout, as any look", () => {
    const { plan } = step(world(started(), { server: "available" }), {
      session: ok(livySession(7, "idle")),
      warmup: failed("unreachable"),
    });
    const st = statusOf(plan);
    expect(phase(st)).toBe("Starting");
    expect(plan.requeueAfterMs).toBe(1_000);
  });

  it("uses spec.warmup.code, and each kind's default", () => {
    const custom = { warmup: { code: "import numpy" } };
    const { plan } = step(world(started(custom), { server: "available" }), {
      session: ok(livySession(7, "idle")),
      warmup: ok(null),
    });
    expect(plan.submitWarmup?.code).toBe("import numpy");
    for (const kind of ["spark", "sql", "sparkr"] as const) {
      const { query } = step(world(started({ kind }), { server: "available" }), {
        session: ok(livySession(7, "idle")),
      });
      expect(query?.warmup?.code).toBe(DEFAULT_WARMUP_CODE[kind]);
    }
  });

  it("warmup.enabled false: Ready as soon as the session is idle, nothing asked or submitted", () => {
    const spec = { warmup: { enabled: false } };
    const { plan, query } = step(world(started(spec), { server: "available" }), {
      session: ok(livySession(7, "idle")),
    });
    expect(query?.warmup).toBeUndefined();
    expect(plan.submitWarmup).toBeUndefined();
    expect(phase(statusOf(plan))).toBe("Ready");
  });
});
