/**
 * Worlds for decide(): a LivySession with its owned objects, pods, auth and Livy's answers, built as the
 * informers and the gatherer would hand them over. Statuses are reached by running decide() itself, so
 * the tables test transitions from states the operator really writes.
 */
import { expect } from "vitest";
import {
  FINALIZER,
  type LivySession,
  type LivySessionStatus,
  parseLivySession,
} from "../../src/api/index.ts";
import type { Session, Statement } from "../../src/livy/protocol.ts";
import { decide } from "../../src/operator/decide.ts";
import type { PodLike } from "../../src/operator/observe.ts";
import type {
  Activity,
  AuthObservation,
  DecideSettings,
  LivyAnswer,
  LivyFailure,
  LivyObservation,
  LivyQuery,
  Observation,
  OwnedObjects,
  Plan,
} from "../../src/operator/plan.ts";

export const T0 = Date.parse("2026-03-01T12:00:00.000Z");
export const URL_TEMPLATE = "http://{service}.{namespace}.svc:{port}";
export const SERVER_URL = "http://livy-ws.data.svc:8998";

export const SETTINGS: DecideSettings = {
  defaultImage: "livy:test",
  defaultImagePullPolicy: "IfNotPresent",
  defaultResources: { requests: { cpu: "1" } },
  serverUrlTemplate: URL_TEMPLATE,
  networkPolicy: false,
  networkPolicyOperatorNamespace: "livy-operator",
  sessionPollIntervalMs: 5_000,
  livyFailureThreshold: 3,
  livyFailureWindowMs: 15_000,
  sparkDriverClusterRole: "livy-operator-spark-driver",
};

export interface ResourceOpts {
  status?: LivySessionStatus | undefined;
  annotations?: Record<string, string>;
  generation?: number;
  deleting?: boolean;
  finalizers?: string[];
}

/** A LivySession named data/ws as the cache holds it: defaulted spec, the finalizer, uid and generation. */
export function resource(spec: Record<string, unknown> = {}, opts: ResourceOpts = {}): LivySession {
  const parsed = parseLivySession({
    apiVersion: "livy.dev/v1alpha1",
    kind: "LivySession",
    metadata: { name: "ws" },
    spec,
  });
  if (!parsed.success) throw new Error(parsed.message);
  const ls = parsed.data;
  ls.metadata = {
    name: "ws",
    namespace: "data",
    uid: "uid-1",
    resourceVersion: "10",
    generation: opts.generation ?? 1,
    finalizers: opts.finalizers ?? [FINALIZER],
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
    ...(opts.deleting ? { deletionTimestamp: new Date(T0 - 1_000) } : {}),
  };
  if (opts.status) ls.status = structuredClone(opts.status);
  return ls;
}

export type ServerState = "none" | "progressing" | "available" | "unavailable";

/** The owned objects as applied from `ls`'s spec, the Deployment in `state`. */
export function serverOf(
  ls: LivySession,
  state: ServerState,
  settings = SETTINGS,
  credential?: string,
): OwnedObjects {
  if (state === "none") return {};
  // what the spec builds, whatever the resource's state (suspended, being deleted)
  const { deletionTimestamp: _, ...meta } = ls.metadata;
  const fresh = { ...ls, metadata: meta, spec: { ...ls.spec, suspend: false }, status: {} };
  const d = decide({
    ...bare(fresh, settings),
    resource: fresh,
    ...(credential !== undefined ? { credential } : {}),
  });
  if (!("plan" in d) || !d.plan.apply) throw new Error("expected the objects to apply");
  const owned: OwnedObjects = {};
  for (const { kind, object } of d.plan.apply) {
    // the credential's Secret is not an owned object the operator caches
    if (kind !== "credential") owned[kind] = structuredClone(object) as OwnedObjects[typeof kind];
  }
  const dep = owned.deployment;
  if (dep) {
    dep.metadata = { ...dep.metadata, generation: 1, resourceVersion: "5" };
    dep.status =
      state === "available"
        ? { observedGeneration: 1, availableReplicas: 1, readyReplicas: 1, updatedReplicas: 1 }
        : state === "unavailable"
          ? {
              observedGeneration: 1,
              availableReplicas: 0,
              readyReplicas: 0,
              updatedReplicas: 1,
              conditions: [
                {
                  type: "Progressing",
                  status: "True",
                  reason: "NewReplicaSetAvailable",
                  message: 'ReplicaSet "livy-ws-5d4f" has successfully progressed.',
                },
                { type: "Available", status: "False", reason: "MinimumReplicasUnavailable" },
              ],
            }
          : {
              observedGeneration: 1,
              conditions: [
                {
                  type: "Progressing",
                  status: "True",
                  reason: "ReplicaSetUpdated",
                  message: 'ReplicaSet "livy-ws-5d4f" is progressing.',
                },
              ],
            };
  }
  return owned;
}

function bare(ls: LivySession, settings: DecideSettings): Observation {
  return {
    now: T0,
    resource: ls,
    settings,
    owned: {},
    pods: [],
    auth: { state: "none" },
    memory: {},
  };
}

export interface WorldOpts {
  now?: number;
  server?: ServerState;
  owned?: OwnedObjects;
  pods?: PodLike[];
  auth?: AuthObservation;
  refused?: string;
  settings?: DecideSettings;
  memory?: Observation["memory"];
  /** The per-session credential the server demands (the operator holds the shared key). */
  credential?: string;
  /** The credential the live server was given, when another than `credential` (a rotated key). */
  serverCredential?: string;
}

export function world(ls: LivySession, opts: WorldOpts = {}): Observation {
  const settings = opts.settings ?? SETTINGS;
  return {
    ...bare(ls, settings),
    now: opts.now ?? T0,
    owned:
      opts.owned ?? serverOf(ls, opts.server ?? "none", settings, opts.serverCredential ?? opts.credential),
    pods: opts.pods ?? [],
    auth: opts.auth ?? { state: "none" },
    ...(opts.refused !== undefined ? { refused: opts.refused } : {}),
    ...(opts.memory ? { memory: opts.memory } : {}),
    ...(opts.credential !== undefined ? { credential: opts.credential } : {}),
  };
}

/** A Livy session as Livy answers it. */
export function livySession(id: number, state: string, extra: Partial<Session> = {}): Session {
  return { id, state, name: "data.ws.x.0", kind: "pyspark", log: [], ...extra } as Session;
}

export const ok = <T>(value: T): LivyAnswer<T> => ({ ok: true, value });
export const failed = (kind: LivyFailure["kind"], message = `${kind}!`, extra: Partial<LivyFailure> = {}) =>
  ({ ok: false, error: { kind, message, ...extra } }) as const;

export interface LivyWorld {
  session: LivyAnswer<Session | null>;
  activity?: LivyAnswer<Activity>;
  /** The warm-up statement, when asked for; by default one that ran (warm). */
  warmup?: LivyAnswer<Statement | null>;
}

/** A statement as Livy lists it: `available` with an ok output unless said otherwise. */
export function statement(id: number, code: string, extra: Partial<Statement> = {}): Statement {
  return {
    id,
    code,
    state: "available",
    output: { status: "ok", execution_count: id, data: { "text/plain": "2" } },
    progress: 1,
    started: T0 - 3_000,
    completed: T0 - 1_000,
    ...extra,
  } as Statement;
}

/**
 * decide() once; when it asks for Livy, answers with `livy` (as the gatherer would, reading activity only
 * for a usable session) and decides again. Returns the plan and the question asked.
 */
export function step(o: Observation, livy?: LivyWorld): { plan: Plan; query?: LivyQuery } {
  const first = decide(o);
  if ("plan" in first) return { plan: first.plan };
  const query = first.observe;
  if (!livy) throw new Error(`decide() asked Livy ${JSON.stringify(query)} and the test gave no answer`);
  const s = livy.session;
  const usable = s.ok && s.value && (s.value.state === "idle" || s.value.state === "busy");
  const observation: LivyObservation = {
    url: query.url,
    session: s,
    ...(query.activity && usable ? { activity: livy.activity ?? ok({ busy: false, latestMs: 0 }) } : {}),
    ...(query.warmup && usable ? { warmup: livy.warmup ?? ok(statement(0, query.warmup.code)) } : {}),
  };
  const second = decide({ ...o, livy: observation });
  if (!("plan" in second)) throw new Error("decide() asked Livy twice");
  return { plan: second.plan, query };
}

/** The status a plan writes (it must write one). */
export function statusOf(plan: Plan): LivySessionStatus {
  expect(plan.status, "the plan writes a status").toBeDefined();
  return plan.status as LivySessionStatus;
}

export function cond(status: LivySessionStatus | undefined, type: string) {
  return status?.conditions?.find((c) => c.type === type);
}

/** Runs a LivySession from creation to Ready (idle Livy session 7) and returns the written status. */
export function readyStatus(spec: Record<string, unknown> = {}, at = T0): LivySessionStatus {
  const ls = resource(spec);
  // the attempt is recorded with the Livy session's creation
  const create = step(world(ls, { server: "available", now: at }), { session: ok(null) }).plan;
  const started = resource(spec, { status: statusOf(create) });
  const ready = step(world(started, { server: "available", now: at }), {
    session: ok(livySession(7, "idle")),
  }).plan;
  return statusOf(ready);
}
