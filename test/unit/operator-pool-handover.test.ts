import { describe, expect, it } from "vitest";
import type { LivySessionStatus } from "../../src/api/index.ts";
import { credentialUid } from "../../src/api/index.ts";
import { decide } from "../../src/operator/decide.ts";
import { SPEC_HASH_ANNOTATION } from "../../src/operator/objects.ts";
import type { Observation, OwnedObjects, PoolObservation } from "../../src/operator/plan.ts";
import {
  CLAIMED_BY_LABEL,
  decidePool,
  POOL_LABEL,
  pooledBy,
  pooledServerOf,
  pooledSessionSpec,
  templateKey,
} from "../../src/operator/pool.ts";
import { handedOverIndexOf, poolIndexOf } from "../../src/operator/pool-gather.ts";
import {
  cond,
  livySession,
  ok,
  readyStatus,
  resource,
  serverOf,
  statusOf,
  step,
  T0,
  world,
} from "./operator-world.ts";

/**
 * The hand-over of a warm pooled server (docs/warm-pool.md), decided from observations: a starting
 * LivySession claims a warm server, records it with the pooled Livy session's endpoints, and from then on
 * names everything by the server's id; the pooled LivySession stands down.
 */
const SERVER = "small-pabc0";
const MEMBER_UID = "uid-member";
const SPEC = { kind: "pyspark", idleTimeout: "1h" };

/** The pooled LivySession that started SERVER, Ready: its status and its server's objects. */
function member(): { status: LivySessionStatus; owned: OwnedObjects } {
  const ls = resource(SPEC);
  ls.metadata.name = SERVER;
  ls.metadata.uid = MEMBER_UID;
  const status = { ...readyStatus(SPEC), serverURL: `http://livy-${SERVER}.data.svc:8998` };
  status.sessionURL = `${status.serverURL}/sessions/7`;
  return { status, owned: serverOf(ls, "available") };
}

/** A LivySession parked (IdleTimeout) on the pooled server SERVER it took over; `annotations` on it. */
function parkedOnPooled(annotations?: Record<string, string>) {
  const at = "2026-03-01T11:00:00Z";
  const parked = (type: string, status: "True" | "False") => ({
    type,
    status,
    reason: "IdleTimeout",
    message: "",
    lastTransitionTime: at,
    observedGeneration: 1,
  });
  return resource(SPEC, {
    ...(annotations ? { annotations } : {}),
    status: {
      ...readyStatus(SPEC),
      server: SERVER,
      serverUID: MEMBER_UID,
      conditions: [parked("Idle", "True"), parked("Ready", "False")],
    },
  });
}

function poolWith(opts: { claimedBy?: string; state?: "warm" | "starting" } = {}): PoolObservation {
  const m = member();
  return {
    name: "small",
    servers: [
      {
        id: SERVER,
        createdMs: T0 - 60_000,
        deleting: false,
        claimedBy: opts.claimedBy,
        state: opts.state ?? "warm",
        livySessionId: 7,
      },
    ],
    members: {
      [SERVER]: {
        uid: MEMBER_UID,
        status: m.status,
        deploymentVersion: "42",
        owned: ["deployment", "service", "configMap"],
        credential: false,
      },
    },
  };
}

const withPool = (o: Observation, pool: PoolObservation): Observation => ({ ...o, pool });

describe("decide: taking a warm server from a pool", () => {
  it("claims a warm server by a compare-and-swap on its Deployment, instead of deploying its own", () => {
    const { plan } = step(withPool(world(resource(SPEC)), poolWith()));
    expect(plan.apply).toBeUndefined();
    expect(plan.status, "the record waits for the claim").toBeUndefined();
    expect(plan.claim).toMatchObject({ server: SERVER, pool: "small", resourceVersion: "42" });
    expect(plan.claim?.owner).toMatchObject({ name: "ws", uid: "uid-1", kind: "LivySession" });
    expect(plan.claim?.specHash).toMatch(/^[0-9a-f]{16}$/);
    expect(plan.requeueAfterMs).toBe(0);
  });

  it("adds only the finalizer first (a new LivySession), then claims", () => {
    const { plan } = step(withPool(world(resource(SPEC, { finalizers: [] })), poolWith()));
    expect(plan).toEqual({ finalizer: "add", requeueAfterMs: 0 });
  });

  it("starts its own server when no pooled server is warm", () => {
    const { plan } = step(withPool(world(resource(SPEC)), poolWith({ state: "starting" })));
    expect(plan.claim).toBeUndefined();
    expect(plan.apply?.map((a) => a.kind)).toEqual(["deployment", "configMap", "service"]);
  });

  it("records a claimed server: adopts its objects, Ready with the pooled Livy session, the pooled LivySession deleted", () => {
    const { plan } = step(withPool(world(resource(SPEC)), poolWith({ claimedBy: "uid-1" })));
    expect(plan.adopt?.server).toBe(SERVER);
    expect(plan.adopt?.objects.map((o) => o.kind)).toEqual(["service", "configMap"]);
    for (const o of plan.adopt?.objects ?? []) expect(o.specHash).toMatch(/^[0-9a-f]{16}$/);
    expect(plan.deletePooled).toBe(SERVER);
    const st = statusOf(plan);
    expect(st.phase).toBe("Ready");
    expect(st.server).toBe(SERVER);
    expect(st.serverUID).toBe(MEMBER_UID);
    expect(st.livySessionId).toBe(7);
    expect(st.sessionURL).toBe(`http://livy-${SERVER}.data.svc:8998/sessions/7`);
    expect(st.readyTime).toBe(new Date(T0).toISOString());
    expect(cond(st, "ServerReady")).toMatchObject({ status: "True", reason: "ServerAvailable" });
    expect(cond(st, "SessionReady")).toMatchObject({ status: "True", reason: "SessionIdle" });
    expect(plan.events?.map((e) => e.reason)).toContain("HandedOver");
    expect(plan.requeueAfterMs).toBe(0);
  });

  it("after the hand-over, finds the adopted objects up to date and reads its Livy session by id, as its own", () => {
    const claim = step(withPool(world(resource(SPEC)), poolWith())).plan.claim;
    const record = step(withPool(world(resource(SPEC)), poolWith({ claimedBy: "uid-1" }))).plan;
    const m = member();
    // the objects as the claim and the adoption left them
    const owned = structuredClone(m.owned);
    const set = (o: { metadata?: { annotations?: Record<string, string> } } | undefined, h?: string) => {
      if (o?.metadata?.annotations && h) o.metadata.annotations[SPEC_HASH_ANNOTATION] = h;
    };
    set(owned.deployment, claim?.specHash);
    owned.deployment = {
      ...owned.deployment,
      metadata: {
        ...owned.deployment?.metadata,
        labels: { ...owned.deployment?.metadata?.labels, [CLAIMED_BY_LABEL]: "uid-1" },
      },
    };
    for (const o of record.adopt?.objects ?? []) set(owned[o.kind as "service"], o.specHash);
    const after = resource(SPEC, { status: statusOf(record) });
    const next = step(world(after, { owned, now: T0 + 100 }), {
      session: ok(livySession(7, "idle", { name: `data.${SERVER}.x.0` })),
      activity: ok({ busy: false, latestMs: 0 }),
    });
    expect(next.query).toMatchObject({
      url: `http://livy-${SERVER}.data.svc:8998`,
      sessionId: 7,
      owner: { namespace: "data", name: SERVER },
    });
    expect(next.plan.apply, "no rollout of the server taken over").toBeUndefined();
    expect(next.plan.deleteLivySession).toBeUndefined();
    expect(statusOf(next.plan).phase).toBe("Ready");
    expect(statusOf(next.plan).server).toBe(SERVER);
  });

  it("a woken LivySession that held a pooled server starts its own when no pool serves it, looking again first", () => {
    const parked = parkedOnPooled({ "livy.dev/demanded-at": "now" });
    const { plan } = step(world(parked));
    const st = statusOf(plan);
    expect(st.server).toBeUndefined();
    expect(st.serverUID).toBeUndefined();
    expect(plan.apply).toBeUndefined();
    expect(plan.requeueAfterMs).toBe(0);
  });

  it("parked on a pooled server taken over, all of the server goes: the next start is its own", () => {
    const parked = parkedOnPooled();
    const { plan } = step(world(parked, { owned: member().owned }));
    expect(plan.status, "the record stays").toBeUndefined();
    expect(plan.deleteOwned).toEqual(["deployment", "service", "configMap"]);
  });

  it("deletes the pooled LivySession a hand-over left behind (a pass killed after the record)", () => {
    const record = step(withPool(world(resource(SPEC)), poolWith({ claimedBy: "uid-1" }))).plan;
    const after = resource(SPEC, { status: statusOf(record) });
    const { plan } = step(
      { ...world(after, { server: "available" }), handedFrom: { name: SERVER, deleting: false } },
      {
        session: ok(livySession(7, "idle")),
        activity: ok({ busy: false, latestMs: 0 }),
      },
    );
    expect(plan.deletePooled).toBe(SERVER);
  });

  it("a pooled LivySession whose server was claimed stands down: touches nothing, and lets its deletion go", () => {
    const ls = resource(SPEC, { status: readyStatus(SPEC) });
    const owned = serverOf(ls, "available");
    owned.deployment = {
      ...owned.deployment,
      metadata: { ...owned.deployment?.metadata, labels: { [CLAIMED_BY_LABEL]: "uid-other" } },
    };
    const live = decide(world(ls, { owned }));
    expect(live).toEqual({ plan: {} });
    const deleting = resource(SPEC, { status: readyStatus(SPEC), deleting: true });
    expect(decide(world(deleting, { owned }))).toEqual({ plan: { finalizer: "remove" } });
  });
});

describe("the pool's own decisions", () => {
  it("reads a pooled server's state from its LivySession and its claim from its Deployment", () => {
    const base = { metadata: { name: "p-1", creationTimestamp: new Date(T0).toISOString() } };
    const ready = { conditions: [{ type: "Ready", status: "True" }], livySessionId: 3 };
    expect(pooledServerOf({ ...base, status: ready }, undefined)).toMatchObject({
      id: "p-1",
      state: "warm",
      createdMs: T0,
      livySessionId: 3,
    });
    expect(pooledServerOf({ ...base, status: { phase: "Failed" } }, undefined).state).toBe("failed");
    expect(pooledServerOf(base, undefined).state).toBe("starting");
    expect(pooledServerOf(base, { metadata: { labels: { [CLAIMED_BY_LABEL]: "u" } } }).claimedBy).toBe("u");
  });

  it("counts as pooled only a LivySession the labelled pool controls, not one that merely carries the label", () => {
    const owner = { apiVersion: "livy.dev/v1alpha1", kind: "LivySessionPool", name: "small", uid: "u-pool" };
    const labelled = { metadata: { name: "mine", namespace: "data", labels: { [POOL_LABEL]: "small" } } };
    // a user's LivySession with the label copied from a pooled one's YAML: never handed over or scaled away
    expect(pooledBy(labelled)).toBeUndefined();
    expect(poolIndexOf(labelled)).toBeUndefined();
    const notController = { metadata: { ...labelled.metadata, ownerReferences: [owner] } };
    expect(pooledBy(notController)).toBeUndefined();
    const otherPool = {
      metadata: { ...labelled.metadata, ownerReferences: [{ ...owner, name: "big", controller: true }] },
    };
    expect(pooledBy(otherPool)).toBeUndefined();
    const pooled = { metadata: { ...labelled.metadata, ownerReferences: [{ ...owner, controller: true }] } };
    expect(pooledBy(pooled)).toBe("small");
    expect(poolIndexOf(pooled)).toBe("data/small");
    // a handed-over server's Deployment: labelled by the claim, owned by its taker, still counted by the pool
    const claimed = {
      metadata: {
        name: "livy-small-p1",
        namespace: "data",
        labels: { [POOL_LABEL]: "small", [CLAIMED_BY_LABEL]: "u-user" },
        ownerReferences: [
          {
            apiVersion: "livy.dev/v1alpha1",
            kind: "LivySession",
            name: "user",
            uid: "u-user",
            controller: true,
          },
        ],
      },
    };
    expect(handedOverIndexOf(claimed)).toBe("data/small");
  });

  it("gives a pooled LivySession the pool's template, never idling out, failing fast; and it matches the pool", () => {
    const pool = { kind: "pyspark", server: { image: "x" }, warmup: { enabled: true } };
    const spec = pooledSessionSpec(pool);
    expect(spec).toEqual({
      kind: "pyspark",
      server: { image: "x" },
      warmup: { enabled: true },
      idleTimeout: "0",
      startupTimeout: "1h",
      failurePolicy: "FailFast",
    });
    expect(templateKey(spec as { kind: string })).toBe(templateKey(pool));
  });

  it("names the servers to start and says what the pool holds", () => {
    const d = decidePool(
      { name: "small", input: { size: 2, perServer: { cpu: 1 }, budget: { cpu: 3 } } },
      [{ id: "small-pa", createdMs: 0, deleting: false, state: "warm" }],
      1,
      T0,
    );
    expect(d.create).toHaveLength(1);
    expect(d.create[0]).toMatch(/^small-p[0-9a-z]+$/);
    expect(d.plan).toMatchObject({ target: 2, free: 2, warm: 1, starting: 1, used: { cpu: 1 } });
    expect(d.handedOver).toBe(1);
  });
});

describe("the credential of a server taken over", () => {
  it("derives from the pooled LivySession's uid recorded with it, else from the LivySession's own", () => {
    expect(credentialUid({ metadata: { uid: "own" } })).toBe("own");
    expect(credentialUid({ metadata: { uid: "own" }, status: { server: "p-1", serverUID: "pooled" } })).toBe(
      "pooled",
    );
    expect(credentialUid({ metadata: { uid: "own" }, status: { server: "p-1" } })).toBeUndefined();
  });
});
