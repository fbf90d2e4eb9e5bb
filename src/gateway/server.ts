/**
 * The gateway's request handling: authenticate, authorize, decide (view.ts), then answer, hold or forward.
 * Stateless across replicas: everything it knows comes from the LivySession cache (a watch), the API
 * server's reviews, and Livy itself, so any replica can serve any request and a client's retry can land
 * anywhere.
 */
import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { ANNOTATION_DEMANDED_AT, type LivySession } from "../api/index.ts";
import { KubeApiError, type KubeClient, resourcePath } from "../kube/client.ts";
import { LIVYSESSION_RESOURCE } from "../livy/kube.ts";
import {
  AGGREGATED_PREFIX,
  discoveryDocument,
  type FrontProxyConfig,
  frontProxyUser,
  statusBody,
} from "./aggregation.ts";
import { type Auth, credentialOf, type UserInfo } from "./auth.ts";
import type { GatewayConfig } from "./config.ts";
import type { Holds } from "./holds.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { Lanes, type Ticket } from "./order.ts";
import { findMarked, markCode, rewriteAnswer, statementKind } from "./rewrite.ts";
import { type GatewayRoute, parseRoute, SPARK_UI, verbOf } from "./routes.ts";
import { type Upstream, UpstreamError } from "./upstream.ts";
import {
  type Answer,
  afterChange,
  checkCreateBody,
  decide,
  demandPending,
  type Forward,
  type SessionView,
  sparkUiLocation,
  sparkUiTarget,
  viewOf,
} from "./view.ts";

/** The LivySessions the gateway serves, read from its cache (parsed and defaulted), or null. */
export interface SessionSource {
  get(key: string): LivySession | null;
}

export interface GatewayDeps {
  config: GatewayConfig;
  kube: KubeClient;
  sessions: SessionSource;
  holds: Holds;
  auth: Auth;
  upstream: Upstream;
  metrics: GatewayMetrics;
  log: Logger;
  /** Headers the gateway presents to a LivySession's Livy server (its credentials). */
  upstreamHeaders?(obj: LivySession): Promise<Record<string, string>>;
  /** A Livy server refused the gateway's credential: read them again; true when they changed. */
  refreshUpstreamCredentials?(): Promise<boolean>;
  /** A statement (or other code) went to the session: activity seen at the door. */
  onActivity?(obj: LivySession): void;
}

const JSON_TYPE = "application/json;charset=utf-8";
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

class HttpError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  route: GatewayRoute;
  key: string;
  user: UserInfo;
  body: string;
  /** Aborts when the client goes away or the gateway gives up on the request. */
  gone: AbortSignal;
  deadline: number;
  heldMs: number;
  /** The Idempotency-Key marker id, when the client sent one. */
  keyedMarker?: string;
  /** This request's marker otherwise: the same for every attempt to send it. */
  marker: string;
  /** An earlier attempt may have reached Livy: look for its statement before sending again. */
  uncertain?: boolean;
  /** The statement POST's place in its session's lane (order of arrival). */
  ticket?: Ticket;
  /** Sent once more after a refused credential and a new key. */
  credentialRetried?: boolean;
}

/** `Prefer: wait=N` (RFC 7240): the client waits at most N seconds for a held request. */
export function preferWaitMs(prefer: string | undefined): number | undefined {
  const m = /(?:^|[,;\s])wait=(\d+(?:\.\d+)?)/i.exec(prefer ?? "");
  return m ? Math.round(Number(m[1]) * 1000) : undefined;
}

export class Gateway {
  readonly #d: GatewayDeps;
  readonly #wakes = new Map<string, Promise<void>>();
  readonly #stopHolds = new AbortController();
  readonly #lanes = new Lanes();
  #inflight = 0;
  #idleWaiters: Array<() => void> = [];
  #draining = false;

  constructor(deps: GatewayDeps) {
    this.#d = deps;
  }

  get inflight(): number {
    return this.#inflight;
  }

  /** New answers close their connection (keep-alive would pin clients to a replica that is going away). */
  drain(): void {
    this.#draining = true;
  }

  /** Held requests stop waiting and get 503 (they were not sent to Livy: retrying is safe). */
  releaseHolds(): void {
    this.#stopHolds.abort();
    this.#d.holds.notifyAll();
  }

  /** Resolves once no request is in flight. */
  idle(): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  /** Clients with a Kubernetes token (Bearer, or the Basic auth password). */
  handle = (req: IncomingMessage, res: ServerResponse): void => this.#handle(req, res, null);

  /**
   * The API server's aggregation layer (aggregation.ts): the caller's identity comes in the front proxy's
   * headers over a connection its CA verified; `config()` gives the current front-proxy settings.
   */
  handleAggregated(config: () => FrontProxyConfig | null) {
    return (req: IncomingMessage, res: ServerResponse): void => {
      const path = (req.url ?? "/").split("?")[0]?.replace(/\/$/, "");
      if (path === AGGREGATED_PREFIX && (req.method === "GET" || req.method === "HEAD")) {
        this.#send(res, 200, discoveryDocument(), {}, req.method === "HEAD");
        return;
      }
      this.#handle(req, res, config);
    };
  }

  #handle(
    req: IncomingMessage,
    res: ServerResponse,
    frontProxy: (() => FrontProxyConfig | null) | null,
  ): void {
    this.#inflight++;
    const started = performance.now();
    let op = "unknown";
    const aggregated = frontProxy !== null;
    // statement POSTs take their place in the session's lane now, in the order they arrive
    const early = parseRoute(req.method ?? "GET", req.url ?? "/", { aggregated });
    const ticket =
      early?.livy.op === "postStatement" ? this.#lanes.take(`${early.namespace}/${early.name}`) : undefined;
    res.once("close", () => {
      ticket?.release();
      this.#inflight--;
      this.#d.metrics.requests.inc({ op, code: String(res.statusCode) });
      this.#d.metrics.duration.observe({ op }, (performance.now() - started) / 1000);
      if (this.#inflight === 0) for (const w of this.#idleWaiters.splice(0)) w();
    });
    this.#serve(req, res, ticket, frontProxy, (o) => {
      op = o;
    }).catch((err: unknown) => {
      if (err instanceof HttpError) {
        this.#send(
          res,
          err.status,
          aggregated ? statusBody(err.status, err.message) : { msg: err.message },
          err.headers,
        );
        return;
      }
      this.#d.log.error({ err: String(err), stack: (err as Error)?.stack }, "request failed");
      this.#send(res, 500, { msg: `gateway error: ${String(err)}` });
    });
  }

  async #serve(
    req: IncomingMessage,
    res: ServerResponse,
    ticket: Ticket | undefined,
    frontProxy: (() => FrontProxyConfig | null) | null,
    setOp: (op: string) => void,
  ): Promise<void> {
    const method = req.method ?? "GET";
    const route = parseRoute(method, req.url ?? "/", { aggregated: frontProxy !== null });
    if (!route) {
      setOp("none");
      throw new HttpError(
        404,
        frontProxy
          ? `Not Found: Livy's API is under ${AGGREGATED_PREFIX}/namespaces/{namespace}/livysessions/{name}/proxy/`
          : "Not Found: Livy's API is under /namespaces/{namespace}/livysessions/{name}/",
      );
    }
    setOp(route.livy.op);

    // 1. who
    const user = frontProxy ? this.#frontProxyUser(req, frontProxy()) : await this.#tokenUser(req);

    // 2. may they
    try {
      const r = await this.#d.auth.authorize(user, {
        namespace: route.namespace,
        name: route.name,
        verb: verbOf(method),
      });
      this.#d.metrics.reviews.inc({ kind: "access", result: r.allowed ? "allowed" : "denied" });
      if (!r.allowed) throw new HttpError(403, r.reason);
    } catch (err) {
      if (err instanceof HttpError) throw err;
      throw this.#apiUnavailable("SubjectAccessReview", err);
    }
    await this.#dispatch(req, res, route, user, ticket);
  }

  #frontProxyUser(req: IncomingMessage, cfg: FrontProxyConfig | null): UserInfo {
    if (!cfg) throw new HttpError(503, "the front proxy's CA is not loaded yet", { "retry-after": "1" });
    const v = frontProxyUser(req, cfg);
    this.#d.metrics.reviews.inc({ kind: "front-proxy", result: v.ok ? "ok" : "refused" });
    if (!v.ok) throw new HttpError(401, `Unauthorized: ${v.reason}`);
    return v.user;
  }

  async #tokenUser(req: IncomingMessage): Promise<UserInfo> {
    const cred = credentialOf(req.headers.authorization);
    const challenge = { "www-authenticate": 'Bearer realm="livy-gateway", Basic realm="livy-gateway"' };
    if (!cred)
      throw new HttpError(
        401,
        "Unauthorized: send a Kubernetes token (Bearer, or as the Basic auth password)",
        challenge,
      );
    if ("error" in cred) throw new HttpError(401, `Unauthorized: ${cred.error}`, challenge);
    try {
      const r = await this.#d.auth.authenticate(cred.token);
      this.#d.metrics.reviews.inc({ kind: "token", result: r.ok ? "ok" : "refused" });
      if (!r.ok) throw new HttpError(401, `Unauthorized: ${r.reason}`, challenge);
      return r.user;
    } catch (err) {
      if (err instanceof HttpError) throw err;
      throw this.#apiUnavailable("TokenReview", err);
    }
  }

  /** 3. what: the decision, then answer, hold or forward. */
  async #dispatch(
    req: IncomingMessage,
    res: ServerResponse,
    route: GatewayRoute,
    user: UserInfo,
    ticket: Ticket | undefined,
  ): Promise<void> {
    const method = req.method ?? "GET";
    const cfg = this.#d.config;
    const body = await readBody(req, cfg.maxBodyBytes);
    const key = `${route.namespace}/${route.name}`;
    const obj = this.#d.sessions.get(key);
    const createBodyError = route.livy.op === "createSession" && obj ? checkCreateBody(body, obj) : null;
    if (route.livy.op === "sparkUi") {
      await this.#sparkUi(req, res, route, obj);
      return;
    }
    const action = decide(route, obj, method, { livyVersion: cfg.livyVersion, createBodyError });

    const gone = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) gone.abort();
    });
    const wait = preferWaitMs(header(req, "prefer"));
    const ctx: RequestContext = {
      req,
      res,
      route,
      key,
      user,
      body,
      gone: gone.signal,
      deadline: Date.now() + Math.min(cfg.holdTimeoutMs, wait ?? Number.POSITIVE_INFINITY),
      heldMs: 0,
      marker: `r${randomBytes(16).toString("base64url")}`,
      ...(ticket ? { ticket } : {}),
    };
    const idem = header(req, "idempotency-key");
    if (idem !== undefined && route.livy.op === "postStatement") {
      if (!IDEMPOTENCY_KEY.test(idem))
        throw new HttpError(400, "Idempotency-Key must be 1 to 255 visible ASCII characters");
      ctx.keyedMarker = `k${createHash("sha256").update(`${user.username}\n${idem}`).digest("base64url").slice(0, 32)}`;
    }

    if (action.type === "answer") {
      if (action.wake && obj) await this.#wake(obj);
      this.#answer(ctx, action);
      return;
    }
    if (action.type === "forward" && route.livy.op !== "postStatement" && obj) {
      await this.#forward(ctx, obj, action);
      return;
    }
    // A statement (or other code) to run: forwarded when Ready, else held until it is.
    await this.#run(ctx);
  }

  /**
   * The session's Spark UI, streamed. Spark builds its links from the X-Forwarded-Context header when
   * spark.ui.proxyBase is not set (UIUtils.uiRoot, Spark 3.x), so one UI serves its right links behind every
   * prefix it is reached by (the gateway's own, the API server's aggregated path): the operator sets no
   * proxyBase. The client's credentials (a Kubernetes token, cookies) never go to the UI.
   */
  async #sparkUi(
    req: IncomingMessage,
    res: ServerResponse,
    route: GatewayRoute,
    obj: LivySession | null,
  ): Promise<void> {
    const target = sparkUiTarget(obj, route);
    if ("type" in target) {
      this.#send(res, target.status, target.body, target.headers ?? {}, req.method === "HEAD");
      return;
    }
    const fwd = header(req, "x-forwarded-prefix");
    const context = `${fwd ? fwd.replace(/\/$/, "") : ""}${route.prefix}${SPARK_UI}`;
    const headers: Record<string, string> = { "x-forwarded-context": context };
    for (const h of [
      "accept",
      "accept-encoding",
      "accept-language",
      "if-none-match",
      "if-modified-since",
      "user-agent",
    ]) {
      const v = header(req, h);
      if (v !== undefined) headers[h] = v;
    }
    const gone = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) gone.abort();
    });
    let answer: Awaited<ReturnType<Upstream["stream"]>>;
    try {
      answer = await this.#d.upstream.stream(target.url, { headers, signal: gone.signal });
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      this.#d.metrics.upstreamErrors.inc({ kind: err.kind });
      throw new HttpError(
        502,
        `the Spark UI of LivySession ${route.namespace}/${route.name} did not answer: ${err.message}`,
        {
          "retry-after": String(this.#d.config.retryAfterSeconds),
        },
      );
    }
    const out: Record<string, string | string[]> = {};
    for (const h of [
      "content-type",
      "content-encoding",
      "content-length",
      "cache-control",
      "etag",
      "last-modified",
      "vary",
    ]) {
      const v = answer.headers[h];
      if (v !== undefined) out[h] = v;
    }
    const location = answer.headers.location;
    if (typeof location === "string") out.location = sparkUiLocation(location, target.url, context);
    if (this.#draining) out.connection = "close";
    res.writeHead(answer.status, out);
    if (req.method === "HEAD") {
      answer.body.resume();
      res.end();
      return;
    }
    answer.body.on("error", () => res.destroy());
    answer.body.pipe(res);
  }

  #apiUnavailable(what: string, err: unknown): HttpError {
    this.#d.log.warn({ err: String(err) }, `${what} failed`);
    const status = err instanceof KubeApiError && err.status < 500 && err.status !== 429 ? 500 : 503;
    return new HttpError(status, `cannot check the request with the API server (${what}): ${String(err)}`, {
      "retry-after": String(this.#d.config.retryAfterSeconds),
    });
  }

  /** Sets the demand annotation on a parked LivySession (once per session at a time, not over a pending one). */
  async #wake(obj: LivySession): Promise<void> {
    const key = `${obj.metadata.namespace}/${obj.metadata.name}`;
    const running = this.#wakes.get(key);
    if (running) return await running;
    const p = (async () => {
      let current: LivySession | null = obj;
      for (let attempt = 0; attempt < 3 && current; attempt++) {
        if (demandPending(current)) return;
        const v = viewOf(current).kind;
        if (v !== "parked" && v !== "failed") return;
        try {
          // resourceVersion makes it a compare-and-swap: of several replicas waking it at once, one writes
          await this.#d.kube.mergePatch(
            resourcePath(LIVYSESSION_RESOURCE, obj.metadata.namespace, obj.metadata.name),
            {
              metadata: {
                resourceVersion: current.metadata.resourceVersion,
                annotations: { [ANNOTATION_DEMANDED_AT]: new Date().toISOString() },
              },
            },
          );
          this.#d.metrics.wakes.inc();
          this.#d.log.info(
            { namespace: obj.metadata.namespace, name: obj.metadata.name },
            "woke the LivySession",
          );
          return;
        } catch (err) {
          if (!(err instanceof KubeApiError && err.isConflict)) throw err;
          // someone changed it meanwhile (another replica's demand, the operator's status): look again
          current = await this.#d.kube.getOrNull<LivySession>(
            resourcePath(LIVYSESSION_RESOURCE, obj.metadata.namespace, obj.metadata.name),
          );
        }
      }
    })().finally(() => this.#wakes.delete(key));
    this.#wakes.set(key, p);
    await p;
  }

  /**
   * A statement (or other code-running request): sent when the session is Ready, else held (waking a
   * parked session) until it is, its deadline passes, the client leaves or the session cannot start.
   */
  async #run(ctx: RequestContext): Promise<void> {
    const { key } = ctx;
    const holds = this.#d.holds;
    let entered = false;
    let lastWake = 0;
    const holdStart = Date.now();
    const finishHold = (outcome: string) => {
      if (!entered) return;
      holds.leave(key);
      this.#d.metrics.held.set(holds.count);
      this.#d.metrics.holdSeconds.observe({ outcome }, (Date.now() - holdStart) / 1000);
      entered = false;
    };
    try {
      for (;;) {
        const obj = this.#d.sessions.get(key);
        const next = afterChange(obj, ctx.route);
        if (typeof next === "object") {
          finishHold("refused");
          this.#answer(ctx, next);
          return;
        }
        if (next === "ready" && obj) {
          ctx.heldMs = entered ? Date.now() - holdStart : 0;
          const done = await this.#attempt(ctx, obj);
          if (done) {
            finishHold("ready");
            return;
          }
          // the endpoint in the cache is stale (server gone, session replaced): wait for the next status
        } else if (
          obj &&
          viewOf(obj).kind === "parked" &&
          !demandPending(obj) &&
          Date.now() - lastWake > 5_000
        ) {
          // parked for idleness (also when a teardown raced the request): a demand, then wait for Ready;
          // the cache may show the demand only a moment later, hence not again within 5 s
          lastWake = Date.now();
          await this.#wake(obj);
        }
        if (!entered) {
          if (!holds.tryEnter(key)) {
            this.#d.metrics.queueFull.inc();
            throw new HttpError(
              503,
              `too many requests are waiting for LivySession ${key} to start (${holds.heldFor(key)} here); retry later`,
              { "retry-after": String(this.#d.config.retryAfterSeconds) },
            );
          }
          entered = true;
          this.#d.metrics.held.set(holds.count);
        }
        const left = ctx.deadline - Date.now();
        if (left <= 0) {
          finishHold("timeout");
          const current = this.#d.sessions.get(key);
          throw new HttpError(
            504,
            `LivySession ${key} did not become Ready within ${Math.round((Date.now() - holdStart) / 1000)} s` +
              `${current ? ` (${describeView(viewOf(current))})` : ""}; the request was not sent to Livy, retrying is safe`,
            { "retry-after": String(this.#d.config.retryAfterSeconds) },
          );
        }
        if (this.#stopHolds.signal.aborted) {
          finishHold("shutdown");
          throw new HttpError(503, "the gateway is shutting down; the request was not sent to Livy, retry", {
            "retry-after": "1",
          });
        }
        await holds.waitForChange(
          key,
          Math.min(left, 1_000),
          AbortSignal.any([ctx.gone, this.#stopHolds.signal]),
        );
        if (ctx.gone.aborted) {
          // the client left: what it asked for must not run behind its back (it may be retrying elsewhere)
          finishHold("client_gone");
          this.#d.log.info({ key }, "client left while its request was held; dropped it");
          return;
        }
      }
    } finally {
      finishHold("error");
    }
  }

  /** One attempt to send a held or Ready request: true when answered, false to wait for a new endpoint. */
  async #attempt(ctx: RequestContext, obj: LivySession): Promise<boolean> {
    const view = viewOf(obj);
    if (view.kind !== "ready") return false;
    const action = decide(ctx.route, obj, ctx.req.method ?? "POST", {
      livyVersion: this.#d.config.livyVersion,
    });
    if (action.type !== "forward") {
      this.#answer(
        ctx,
        action.type === "answer" ? action : { type: "answer", status: 500, body: { msg: "no endpoint" } },
      );
      return true;
    }
    if (ctx.route.livy.op !== "postStatement") return await this.#forward(ctx, obj, action, true);
    // keyed retries in this replica are ordered by the session's lane: a retry finds the first's statement
    return await this.#postStatement(ctx, obj, view, action);
  }

  async #postStatement(
    ctx: RequestContext,
    obj: LivySession,
    view: Extract<SessionView, { kind: "ready" }>,
    action: Forward,
  ): Promise<boolean> {
    let parsed: Record<string, unknown> | null = null;
    try {
      const v = JSON.parse(ctx.body) as unknown;
      if (typeof v === "object" && v !== null && !Array.isArray(v)) parsed = v as Record<string, unknown>;
    } catch {
      // Livy answers a body that is not JSON with its own error
    }
    const marker = ctx.keyedMarker ?? ctx.marker;
    const marked =
      parsed && typeof parsed.code === "string"
        ? markCode(parsed.code, statementKind(parsed, obj.spec.kind), marker)
        : null;
    const body = marked && parsed ? JSON.stringify({ ...parsed, code: marked }) : ctx.body;
    const headers = await this.#upstreamHeaders(obj);
    await ctx.ticket?.turn();
    if (ctx.gone.aborted) return true;

    if ((ctx.keyedMarker || ctx.uncertain) && marked) {
      const lookup = await this.#lookup(view, marker, headers);
      if (lookup === "unreachable") return false;
      if (lookup) {
        this.#replay(ctx, obj, lookup);
        return true;
      }
    }
    if (ctx.gone.aborted) return true;
    let answer: Awaited<ReturnType<Upstream["send"]>>;
    const t0 = performance.now();
    try {
      answer = await this.#d.upstream.send("POST", `${view.serverURL}${action.path}`, { body, headers });
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      this.#d.metrics.upstreamErrors.inc({ kind: err.kind });
      this.#d.log.warn({ key: ctx.key, kind: err.kind, err: err.message }, "statement POST to Livy failed");
      if (err.kind === "not_sent") return false;
      if (!marked) {
        throw new HttpError(
          502,
          `the Livy server did not answer (${err.message}); the statement may have been accepted`,
        );
      }
      // the answer was lost: did Livy take the statement? Until that is known, it is not sent again.
      ctx.uncertain = true;
      for (let i = 0; i < 3; i++) {
        const found = await this.#lookup(view, marker, headers);
        if (found && found !== "unreachable") {
          this.#replay(ctx, obj, found);
          return true;
        }
        if (found === null) return false; // Livy answers and has no such statement: sending again is safe
        await new Promise((r) => setTimeout(r, 200 * 2 ** i));
      }
      return false;
    } finally {
      this.#d.metrics.upstreamDuration.observe((performance.now() - t0) / 1000);
    }
    if (answer.status === 404 && /not found/i.test(answer.text)) {
      // the session id in the cache is gone (torn down or replaced): nothing ran; wait for the new one
      return false;
    }
    // refused the gateway's credential: nothing ran; with a new key, send again
    if (answer.status === 401) return await this.#refused(ctx);
    this.#d.onActivity?.(obj);
    this.#respondUpstream(ctx, obj, action, answer);
    return true;
  }

  /** The newest statements searched for the marker: the statement, null (not there) or "unreachable". */
  async #lookup(
    view: Extract<SessionView, { kind: "ready" }>,
    marker: string,
    headers: Record<string, string>,
  ): Promise<Record<string, unknown> | null | "unreachable"> {
    try {
      const a = await this.#d.upstream.send(
        "GET",
        `${view.serverURL}/sessions/${view.livySessionId}/statements?order=desc&size=${this.#d.config.idempotencyWindow}`,
        { headers },
      );
      if (a.status !== 200) return "unreachable";
      return findMarked(JSON.parse(a.text), marker) ?? null;
    } catch {
      return "unreachable";
    }
  }

  #replay(ctx: RequestContext, obj: LivySession, statement: Record<string, unknown>): void {
    this.#d.metrics.replays.inc();
    const r = rewriteAnswer("statementCreated", 201, statement, { obj, prefix: this.#prefix(ctx) });
    this.#send(ctx.res, 201, r.body, {
      ...(r.location ? { location: r.location } : {}),
      "idempotent-replayed": "true",
      ...this.#heldHeader(ctx),
    });
  }

  async #forward(ctx: RequestContext, obj: LivySession, action: Forward, fromHold = false): Promise<boolean> {
    const view = viewOf(obj);
    if (view.kind !== "ready") return false;
    const hasBody = !["GET", "HEAD", "DELETE"].includes(action.method);
    const t0 = performance.now();
    let answer: Awaited<ReturnType<Upstream["send"]>>;
    try {
      answer = await this.#d.upstream.send(
        action.method === "HEAD" ? "GET" : action.method,
        `${view.serverURL}${action.path}`,
        {
          ...(hasBody ? { body: ctx.body } : {}),
          headers: await this.#upstreamHeaders(obj),
        },
      );
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      this.#d.metrics.upstreamErrors.inc({ kind: err.kind });
      if (fromHold && err.kind === "not_sent") return false;
      throw new HttpError(
        err.kind === "not_sent" ? 503 : 502,
        `the Livy server of LivySession ${ctx.key} did not answer: ${err.message}`,
        { "retry-after": String(this.#d.config.retryAfterSeconds) },
      );
    } finally {
      this.#d.metrics.upstreamDuration.observe((performance.now() - t0) / 1000);
    }
    if (answer.status === 401) {
      if (ctx.credentialRetried) this.#refusedError(ctx);
      ctx.credentialRetried = true;
      if (!(await this.#d.refreshUpstreamCredentials?.())) this.#refusedError(ctx);
      return await this.#forward(ctx, obj, action, fromHold);
    }
    if (hasBody) this.#d.onActivity?.(obj);
    this.#respondUpstream(ctx, obj, action, answer);
    return true;
  }

  /** A statement POST refused for the credential: once more with a new key, else 502. */
  async #refused(ctx: RequestContext): Promise<boolean> {
    if (!ctx.credentialRetried) {
      ctx.credentialRetried = true;
      if (await this.#d.refreshUpstreamCredentials?.()) return false;
    }
    this.#refusedError(ctx);
  }

  #refusedError(ctx: RequestContext): never {
    this.#d.log.warn({ key: ctx.key }, "a Livy server refused the gateway's credential");
    throw new HttpError(
      502,
      `the Livy server of LivySession ${ctx.key} refused the gateway's credential (the operator and the gateway must share the session key; a server with spec.auth needs the gateway to read its Secret)`,
    );
  }

  #respondUpstream(
    ctx: RequestContext,
    obj: LivySession,
    action: Forward,
    answer: { status: number; contentType: string; text: string },
  ): void {
    let json: unknown;
    try {
      json = answer.text === "" ? undefined : JSON.parse(answer.text);
    } catch {
      json = undefined;
    }
    if (json === undefined || action.transform === "none") {
      this.#sendRaw(
        ctx.res,
        answer.status,
        answer.contentType,
        answer.text,
        this.#heldHeader(ctx),
        ctx.req.method === "HEAD",
      );
      return;
    }
    const r = rewriteAnswer(action.transform, answer.status, json, { obj, prefix: this.#prefix(ctx) });
    this.#send(
      ctx.res,
      r.status,
      r.body,
      {
        ...(r.location ? { location: r.location } : {}),
        ...this.#heldHeader(ctx),
      },
      ctx.req.method === "HEAD",
    );
  }

  async #upstreamHeaders(obj: LivySession): Promise<Record<string, string>> {
    return (await this.#d.upstreamHeaders?.(obj)) ?? {};
  }

  #heldHeader(ctx: RequestContext): Record<string, string> {
    return ctx.heldMs > 0 ? { "x-livy-gateway-held-ms": String(ctx.heldMs) } : {};
  }

  /** The prefix as the client addressed it (behind a proxy that strips a path, X-Forwarded-Prefix). */
  #prefix(ctx: RequestContext): string {
    const fwd = header(ctx.req, "x-forwarded-prefix");
    return `${fwd ? fwd.replace(/\/$/, "") : ""}${ctx.route.prefix}`;
  }

  #answer(ctx: RequestContext, a: Answer): void {
    const headers = { ...(a.headers ?? {}) };
    if (headers.location)
      headers.location = `${this.#prefix(ctx)}${headers.location.slice(ctx.route.prefix.length)}`;
    this.#send(ctx.res, a.status, a.body, headers, ctx.req.method === "HEAD");
  }

  #send(
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
    head = false,
  ): void {
    this.#sendRaw(res, status, JSON_TYPE, JSON.stringify(body), headers, head);
  }

  #sendRaw(
    res: ServerResponse,
    status: number,
    contentType: string,
    text: string,
    headers: Record<string, string> = {},
    head = false,
  ): void {
    if (res.headersSent || res.destroyed) return;
    const h: Record<string, string | number> = {
      "content-type": contentType,
      "content-length": Buffer.byteLength(text),
      ...headers,
    };
    if (this.#draining) h.connection = "close";
    res.writeHead(status, h);
    res.end(head ? undefined : text);
  }
}

function describeView(v: SessionView): string {
  switch (v.kind) {
    case "starting":
      return `starting: ${v.message}`;
    case "parked":
      return "parked for idleness";
    case "failed":
      return `failed: ${v.reason}`;
    default:
      return v.kind;
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function readBody(req: IncomingMessage, max: number): Promise<string> {
  if (req.method === "GET" || req.method === "HEAD") {
    req.resume();
    return "";
  }
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > max) throw new HttpError(413, `the body is larger than ${max} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) throw new HttpError(413, `the body is larger than ${max} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}
