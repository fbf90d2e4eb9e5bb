import type { Logger } from "pino";
import { ConditionType, getCondition, type LivySession, Reason } from "../api/index.ts";
import type { KubeClient } from "../kube/client.ts";
import type { LivyAuth, LivyClient } from "../livy/client.ts";
import type { OperatorConfig } from "./config.ts";
import { decide } from "./decide.ts";
import type { EventRecorder } from "./events.ts";
import { DerivedObjectRefused, Executor, LIVYSESSIONS } from "./execute.ts";
import { type Caches, Gatherer } from "./gather.ts";
import type { Metrics } from "./metrics.ts";
import type { Memory } from "./plan.ts";

export type { Caches } from "./gather.ts";
export { LIVYSESSIONS };

export interface ReconcileResult {
  requeueAfterMs?: number;
  /** The requeue is a Ready session's poll: it joins the queue's routine lane. */
  routine?: boolean;
}

export interface ReconcilerDeps {
  kube: KubeClient;
  caches: Caches;
  config: OperatorConfig;
  metrics: Metrics;
  events: EventRecorder;
  /** A Livy client per server URL and credentials (kept alive across passes). */
  livy(url: string, auth?: LivyAuth): LivyClient;
  /** The key shared with the gateway, once read; null: no per-session credentials. */
  sessionKey?: () => Buffer | null;
}

/** Steps of one pass: a step that changed something and asks to look again at once continues the pass. */
const MAX_STEPS = 6;

/**
 * One pass over one LivySession: observe, decide (decide.ts, pure), execute; again while the plan asks to
 * look again at once (after applying the server's objects, after creating the Livy session), so a cold
 * start needs no round trip through the watch between its steps.
 */
export class Reconciler {
  private readonly gather: Gatherer;
  private readonly executor: Executor;
  private readonly caches: Caches;
  private readonly memory = new Map<string, Memory>();
  /** LivySessions whose Livy session is starting or warming up (polled tightly; how tightly depends on how many). */
  private readonly starting = new Set<string>();
  /** LivySessions Ready (polled all together at a bounded rate: decide.ts servingPollMs). */
  private readonly serving = new Set<string>();

  constructor(deps: ReconcilerDeps) {
    this.caches = deps.caches;
    this.gather = new Gatherer(deps);
    this.executor = new Executor({ ...deps, livyRequestTimeoutMs: deps.config.livyRequestTimeoutMs });
  }

  async reconcile(key: string, log: Logger, signal?: AbortSignal): Promise<ReconcileResult> {
    let refused: string | undefined;
    for (let step = 0; step < MAX_STEPS; step++) {
      const obj = this.caches.sessions.get(key);
      if (!obj?.metadata?.name || !obj.metadata.namespace || !obj.metadata.uid) {
        this.memory.delete(key);
        return {};
      }
      const observation = await this.gather.observe(obj, this.memory.get(key) ?? {}, refused, signal);
      observation.starting = this.starting.size + (this.starting.has(key) ? 0 : 1);
      observation.serving = this.serving.size + (this.serving.has(key) ? 0 : 1);
      let decision = decide(observation);
      if ("observe" in decision) {
        observation.livy = await this.gather.livy(decision.observe, signal);
        const refusedAuth = observation.livy.session.ok ? undefined : observation.livy.session.error.status;
        if ((refusedAuth === 401 || refusedAuth === 403) && obj.spec.auth)
          this.gather.secrets.invalidate(obj.metadata.namespace, obj.spec.auth.secretName);
        decision = decide(observation);
        if ("observe" in decision) throw new Error("decide() asked for Livy twice in one step");
      }
      const plan = decision.plan;
      try {
        await this.executor.execute(obj, plan, log, signal);
      } catch (err) {
        if (err instanceof DerivedObjectRefused && refused === undefined) {
          refused = err.message;
          continue;
        }
        throw err;
      }
      if (plan.memory) this.memory.set(key, plan.memory);
      if (plan.status) {
        // starting or warming up: polled tightly, all of them together at a bounded rate (decide.ts)
        const session = getCondition(plan.status.conditions, ConditionType.SessionReady);
        const ready = getCondition(plan.status.conditions, ConditionType.Ready);
        if (
          (session?.status === "False" && session.reason === Reason.SessionStarting) ||
          (ready?.status === "False" && ready.reason === Reason.WarmingUp)
        )
          this.starting.add(key);
        else this.starting.delete(key);
        if (ready?.status === "True") this.serving.add(key);
        else this.serving.delete(key);
      }
      if (plan.requeueAfterMs !== 0)
        return plan.requeueAfterMs === undefined
          ? {}
          : { requeueAfterMs: plan.requeueAfterMs, ...(plan.routine ? { routine: true } : {}) };
    }
    return { requeueAfterMs: 0 };
  }

  /** Forgets what is kept in memory for a LivySession that is gone. */
  forget(key: string, obj?: LivySession): void {
    this.memory.delete(key);
    this.starting.delete(key);
    this.serving.delete(key);
    if (obj?.spec?.auth)
      this.gather.secrets.invalidate(obj.metadata.namespace ?? "", obj.spec.auth.secretName);
  }
}
