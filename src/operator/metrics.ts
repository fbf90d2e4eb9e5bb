import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/**
 * The operator's metrics. Reconcile and work-queue series carry the names controller-runtime users already
 * graph; the livy_operator_* series are this operator's own.
 */
export function createMetrics(controller = "livysession") {
  const registry = new Registry();
  /** Counts LivySessions by phase at scrape time (the controller sets it to read its cache). */
  let phaseSource: () => Iterable<string> = () => [];
  collectDefaultMetrics({ register: registry });
  const labels = { controller };
  const m = {
    registry,
    reconcileTotal: new Counter({
      name: "controller_runtime_reconcile_total",
      help: "Total number of reconciliations per controller, by result (success, error, requeue, requeue_after).",
      labelNames: ["controller", "result"],
      registers: [registry],
    }),
    reconcileErrors: new Counter({
      name: "controller_runtime_reconcile_errors_total",
      help: "Total number of reconciliation errors per controller.",
      labelNames: ["controller"],
      registers: [registry],
    }),
    reconcileTime: new Histogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Length of time per reconciliation per controller.",
      labelNames: ["controller"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    activeWorkers: new Gauge({
      name: "controller_runtime_active_workers",
      help: "Number of currently used workers per controller.",
      labelNames: ["controller"],
      registers: [registry],
    }),
    maxWorkers: new Gauge({
      name: "controller_runtime_max_concurrent_reconciles",
      help: "Maximum number of concurrent reconciles per controller.",
      labelNames: ["controller"],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: "workqueue_depth",
      help: "Current depth of workqueue.",
      labelNames: ["name"],
      registers: [registry],
    }),
    queueAdds: new Counter({
      name: "workqueue_adds_total",
      help: "Total number of adds handled by workqueue.",
      labelNames: ["name"],
      registers: [registry],
    }),
    queueRetries: new Counter({
      name: "workqueue_retries_total",
      help: "Total number of retries handled by workqueue.",
      labelNames: ["name"],
      registers: [registry],
    }),
    queueLatency: new Histogram({
      name: "workqueue_queue_duration_seconds",
      help: "How long in seconds an item stays in workqueue before being requested.",
      labelNames: ["name"],
      buckets: [0.0001, 0.001, 0.01, 0.1, 1, 10, 100],
      registers: [registry],
    }),
    watchRestarts: new Counter({
      name: "livy_operator_watch_restarts_total",
      help: "List/watch restarts by resource and reason (error, expired, stalled).",
      labelNames: ["resource", "reason"],
      registers: [registry],
    }),
    sessionsByPhase: new Gauge({
      name: "livy_operator_sessions",
      help: "LivySessions known to the operator, by phase.",
      labelNames: ["phase"],
      registers: [registry],
      collect() {
        this.reset();
        for (const phase of phaseSource()) this.inc({ phase });
      },
    }),
    demandToReady: new Histogram({
      name: "livy_operator_demand_to_ready_seconds",
      help: "Time from a demand (creation, wake annotation, spec change) to Ready.",
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300],
      registers: [registry],
    }),
    idleTeardowns: new Counter({
      name: "livy_operator_idle_teardowns_total",
      help: "Livy servers torn down after their idle timeout.",
      registers: [registry],
    }),
    livyRequests: new Counter({
      name: "livy_operator_livy_requests_total",
      help: "Requests the operator sent to Livy servers, by outcome.",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    poolServers: new Gauge({
      name: "livy_operator_pool_servers",
      help: "Servers of each LivySessionPool, by state: warm and starting (free), handed_over (still held by the LivySession that took it).",
      labelNames: ["namespace", "pool", "state"],
      registers: [registry],
    }),
    poolTarget: new Gauge({
      name: "livy_operator_pool_target",
      help: "Free servers each LivySessionPool aims at: min(spec.size, what fits spec.budget).",
      labelNames: ["namespace", "pool"],
      registers: [registry],
    }),
    poolBudget: new Gauge({
      name: "livy_operator_pool_budget",
      help: "Each LivySessionPool's spec.budget.requests, per resource, in base units (cores, bytes).",
      labelNames: ["namespace", "pool", "resource"],
      registers: [registry],
    }),
    poolBudgetUsed: new Gauge({
      name: "livy_operator_pool_budget_used",
      help: "What each LivySessionPool's free servers request together, per resource, in base units (cores, bytes).",
      labelNames: ["namespace", "pool", "resource"],
      registers: [registry],
    }),
    leader: new Gauge({
      name: "livy_operator_leader",
      help: "1 while this replica holds the leader lease.",
      registers: [registry],
    }),
  };
  m.maxWorkers.set(labels, 0);
  return {
    ...m,
    setPhaseSource(fn: () => Iterable<string>) {
      phaseSource = fn;
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
