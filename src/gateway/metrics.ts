import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** The gateway's metrics (`livy_gateway_*`), plus Node's process metrics. */
export function createGatewayMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const reg = { registers: [registry] };
  let sources: {
    sessions: () => number;
    cache: () => { authn: { hits: number; misses: number }; authz: { hits: number; misses: number } };
  } = { sessions: () => 0, cache: () => ({ authn: { hits: 0, misses: 0 }, authz: { hits: 0, misses: 0 } }) };
  const m = {
    registry,
    requests: new Counter({
      name: "livy_gateway_requests_total",
      help: "Requests answered, by Livy operation and HTTP status code.",
      labelNames: ["op", "code"],
      ...reg,
    }),
    duration: new Histogram({
      name: "livy_gateway_request_duration_seconds",
      help: "Time from a request's arrival to its answer (holds included), by Livy operation.",
      labelNames: ["op"],
      buckets: [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
      ],
      ...reg,
    }),
    upstreamDuration: new Histogram({
      name: "livy_gateway_upstream_duration_seconds",
      help: "Time of each request forwarded to a Livy server, until its answer's headers.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      ...reg,
    }),
    upstreamErrors: new Counter({
      name: "livy_gateway_upstream_errors_total",
      help: "Requests to Livy servers that failed without an answer: not_sent (nothing reached Livy) or unknown (it may have).",
      labelNames: ["kind"],
      ...reg,
    }),
    held: new Gauge({
      name: "livy_gateway_held_requests",
      help: "Requests waiting now for their LivySession to become Ready.",
      ...reg,
    }),
    holdSeconds: new Histogram({
      name: "livy_gateway_hold_seconds",
      help: "How long requests waited for their LivySession, by outcome (ready, timeout, refused, client_gone, shutdown).",
      labelNames: ["outcome"],
      buckets: [0.01, 0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600],
      ...reg,
    }),
    queueFull: new Counter({
      name: "livy_gateway_queue_full_total",
      help: "Requests refused with 503 because too many were held already.",
      ...reg,
    }),
    wakes: new Counter({
      name: "livy_gateway_wakes_total",
      help: "Demands set on parked LivySessions (the livy.dev/demanded-at annotation).",
      ...reg,
    }),
    replays: new Counter({
      name: "livy_gateway_idempotent_replays_total",
      help: "Statement POSTs answered with the statement an earlier attempt created (Idempotency-Key or a lost answer).",
      ...reg,
    }),
    reviews: new Counter({
      name: "livy_gateway_reviews_total",
      help: "Authentication (token: ok, refused) and authorization (access: allowed, denied) decisions, cached or not.",
      labelNames: ["kind", "result"],
      ...reg,
    }),
    setSources(s: typeof sources) {
      sources = s;
    },
  };
  new Gauge({
    name: "livy_gateway_livysessions",
    help: "LivySessions in the gateway's cache.",
    ...reg,
    collect() {
      this.set(sources.sessions());
    },
  });
  new Gauge({
    name: "livy_gateway_decision_cache_lookups",
    help: "Lookups of the TokenReview (authn) and SubjectAccessReview (authz) caches, by result (hit, miss).",
    labelNames: ["cache", "result"],
    ...reg,
    collect() {
      const c = sources.cache();
      for (const cache of ["authn", "authz"] as const) {
        this.set({ cache, result: "hit" }, c[cache].hits);
        this.set({ cache, result: "miss" }, c[cache].misses);
      }
    },
  });
  return m;
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;
