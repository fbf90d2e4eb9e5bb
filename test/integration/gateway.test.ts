import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_WARMUP_CODE } from "../../src/api/index.ts";
import { testbed } from "../testbed/context.ts";
import {
  type GatewayProcess,
  gw,
  runThroughGateway,
  serviceAccountToken,
  startGateway,
  textOf,
} from "./gateway-harness.ts";
import {
  applySession,
  createNamespace,
  getSession,
  installCrd,
  isReady,
  kubectl,
  metricValue,
  type OperatorProcess,
  phaseIs,
  startOperator,
  until,
  waitFor,
} from "./harness.ts";

/**
 * The gateway process in front of LivySessions the real operator runs on the test bed (kwok plays the
 * kubelet; Livy is the stand-in here, real Livy in gateway-livy.test.ts), with identities the real API
 * server checks: ServiceAccount tokens from TokenRequest, TokenReview and SubjectAccessReview against RBAC.
 */
describe("gateway", () => {
  let op: OperatorProcess;
  let gate: GatewayProcess;
  let ns: string;
  let runner: string;
  let viewer: string;
  let nobody: string;
  const standin = () => testbed().standinUrl;
  const standinConfig = (patch: Record<string, unknown>) =>
    fetch(`${standin()}/_standin/config`, { method: "POST", body: JSON.stringify(patch) });
  /** Statement POSTs the stand-in has handled (its control API answers at once, whatever the delays). */
  const statementPosts = async () => {
    const c = (await (await fetch(`${standin()}/_standin/counters`)).json()) as {
      routes: Record<string, number>;
    };
    return Object.entries(c.routes)
      .filter(([r]) => /^POST \/sessions\/[^/]+\/statements$/.test(r))
      .reduce((n, [, v]) => n + v, 0);
  };
  /** The statements clients sent to Livy session `id`: the operator's warm-up before Ready left out. */
  const livyStatements = async (id: number) => {
    const all = (await (await fetch(`${standin()}/sessions/${id}/statements`)).json()) as {
      total_statements: number;
      statements: Array<{ id: number; code: string }>;
    };
    const statements = all.statements.filter((s) => s.code !== DEFAULT_WARMUP_CODE.pyspark);
    return { total_statements: statements.length, statements };
  };
  const parkedSession = async (name: string) => {
    await applySession(ns, name, { kind: "pyspark", idleTimeout: "1s" });
    await waitFor(ns, name, phaseIs("Idle"), "Idle", 30_000);
  };

  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("gw");
    op = await startOperator({ name: "gateway", args: ["--namespaces", ns] });
    gate = await startGateway({ name: "a" });
    runner = await serviceAccountToken(ns, "runner", ["get", "create", "delete"]);
    viewer = await serviceAccountToken(ns, "viewer", ["get"]);
    nobody = await serviceAccountToken(ns, "nobody");
    await applySession(ns, "ready", { kind: "pyspark", idleTimeout: "1h" });
    await waitFor(ns, "ready", isReady, "Ready");
  });

  afterAll(async () => {
    await standinConfig({ sessionStartupMs: 300, answerDelayMs: 0 }).catch(() => undefined);
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
      () => "",
    );
    const code = await gate?.stop();
    expect(code, "gateway graceful shutdown exit code").toBe(0);
    await op?.stop();
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("answers 401 without a token or with a bad one, 403 naming what is missing, 200 with RBAC", async () => {
    const none = await gw(gate.url, ns, "ready", "GET", "/sessions");
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toContain("Bearer");
    expect(none.headers.get("www-authenticate")).toContain("Basic");
    expect((await gw(gate.url, ns, "ready", "GET", "/sessions", { token: "not-a-token" })).status).toBe(401);
    expect((await gw(gate.url, ns, "ready", "GET", "/sessions", { basic: "not-a-token" })).status).toBe(401);

    const denied = await gw(gate.url, ns, "ready", "GET", "/sessions", { token: nobody });
    expect(denied.status).toBe(403);
    expect((denied.json as { msg: string }).msg).toContain(
      `User "system:serviceaccount:${ns}:nobody" cannot get resource "livysessions/proxy" in API group "livy.dev" in the namespace "${ns}"`,
    );
    // view: reads, but runs nothing
    expect((await gw(gate.url, ns, "ready", "GET", "/sessions/0", { token: viewer })).status).toBe(200);
    const post = await gw(gate.url, ns, "ready", "POST", "/sessions/0/statements", {
      token: viewer,
      body: { code: "1" },
    });
    expect(post.status).toBe(403);
    expect((post.json as { msg: string }).msg).toContain("cannot create resource");

    const ok = await gw(gate.url, ns, "ready", "GET", "/sessions", { token: runner });
    expect(ok.status).toBe(200);
    expect((await gw(gate.url, ns, "ready", "GET", "/sessions", { basic: runner })).status).toBe(200);
    // a LivySession that does not exist: 404 only after authorization (no probing without rights)
    expect((await gw(gate.url, ns, "nope", "GET", "/sessions/0", { token: nobody })).status).toBe(403);
    expect((await gw(gate.url, ns, "nope", "GET", "/sessions/0", { token: runner })).status).toBe(404);
  });

  it("serves Livy's API for the LivySession's session as id 0, without internal URLs", async () => {
    const ls = await getSession(ns, "ready");
    const livyId = ls?.status?.livySessionId ?? -1;
    const list = await gw(gate.url, ns, "ready", "GET", "/sessions", { token: runner });
    expect(list.json).toMatchObject({
      from: 0,
      total: 1,
      sessions: [{ id: 0, name: "ready", state: "idle", kind: "pyspark" }],
    });
    expect(list.text).not.toContain(standin());

    const created = await gw(gate.url, ns, "ready", "POST", "/sessions", {
      token: runner,
      body: { kind: "pyspark" },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get("location")).toBe(`/namespaces/${ns}/livysessions/ready/sessions/0`);
    expect(created.json).toMatchObject({ id: 0, state: "idle" });
    const refused = await gw(gate.url, ns, "ready", "POST", "/sessions", {
      token: runner,
      body: { kind: "spark", driverMemory: "8g" },
    });
    expect(refused.status).toBe(400);
    expect((refused.json as { msg: string }).msg).toMatch(/kind "spark".*driverMemory="8g"/);

    const { post, statement } = await runThroughGateway(gate.url, ns, "ready", runner, "1 + 41");
    expect(post.headers.get("location")).toBe(
      `/namespaces/${ns}/livysessions/ready/sessions/0/statements/${statement.id}`,
    );
    expect((post.json as { code: string }).code).toBe("1 + 41");
    expect(textOf(statement)).toBe("42");
    // what Livy holds carries the gateway's request marker; the client never sees it
    const inLivy = (await livyStatements(livyId)).statements.find((s) => s.id === statement.id);
    expect(inLivy?.code).toMatch(/^# livy-gateway request r[A-Za-z0-9_-]+\n1 \+ 41$/);
    const listed = await gw(gate.url, ns, "ready", "GET", "/sessions/0/statements", { token: runner });
    expect(JSON.stringify(listed.json)).not.toContain("livy-gateway request");

    expect((await gw(gate.url, ns, "ready", "GET", "/sessions/0/state", { token: runner })).json).toEqual({
      id: 0,
      state: "idle",
    });
    expect((await gw(gate.url, ns, "ready", "GET", "/sessions/1", { token: runner })).status).toBe(404);
    expect((await gw(gate.url, ns, "ready", "GET", "/version", { token: runner })).json).toMatchObject({
      version: "0.9.0-incubating",
    });

    // DELETE detaches: the LivySession and its Livy session stay
    const del = await gw(gate.url, ns, "ready", "DELETE", "/sessions/0", { token: runner });
    expect(del.json).toEqual({ msg: "deleted" });
    expect((await fetch(`${standin()}/sessions/${livyId}`)).status).toBe(200);
    expect(isReady((await getSession(ns, "ready")) as never)).toBe(true);
  });

  it("makes statement POSTs idempotent with Idempotency-Key", async () => {
    const livyId = (await getSession(ns, "ready"))?.status?.livySessionId ?? -1;
    const before = (await livyStatements(livyId)).total_statements;
    const key = `k-${Date.now()}`;
    const send = () =>
      gw(gate.url, ns, "ready", "POST", "/sessions/0/statements", {
        token: runner,
        body: { code: "2 + 2" },
        headers: { "idempotency-key": key },
      });
    const [a, b] = await Promise.all([send(), send()]);
    const c = await send();
    expect([a.status, b.status, c.status]).toEqual([201, 201, 201]);
    const ids = [a, b, c].map((r) => (r.json as { id: number }).id);
    expect(new Set(ids).size).toBe(1);
    expect([a, b, c].filter((r) => r.headers.get("idempotent-replayed") === "true")).toHaveLength(2);
    expect((await livyStatements(livyId)).total_statements).toBe(before + 1);
    // another user's identical key is another request
    const other = await serviceAccountToken(ns, "other", ["get", "create"]);
    const d = await gw(gate.url, ns, "ready", "POST", "/sessions/0/statements", {
      token: other,
      body: { code: "2 + 2" },
      headers: { "idempotency-key": key },
    });
    expect((d.json as { id: number }).id).not.toBe(ids[0]);
  });

  it("wakes a parked LivySession for a statement and answers it with its result", async () => {
    await parkedSession("sleepy");
    // reads do not wake it: it looks idle
    const read = await gw(gate.url, ns, "sleepy", "GET", "/sessions/0", { token: runner });
    expect(read.json).toMatchObject({ id: 0, state: "idle" });
    expect((await getSession(ns, "sleepy"))?.status?.phase).toBe("Idle");

    const held = runThroughGateway(gate.url, ns, "sleepy", runner, "6 * 7");
    // while it starts, a client polling the session sees starting
    const seen = await until(
      "the session reported as starting",
      async () => {
        const s = await gw(gate.url, ns, "sleepy", "GET", "/sessions/0", { token: runner });
        return (s.json as { state: string }).state === "starting" ? s : null;
      },
      10_000,
    );
    expect((seen.json as { log: string[] }).log.join("\n")).toContain("starting");
    const { post, statement } = await held;
    expect(textOf(statement)).toBe("42");
    expect(Number(post.headers.get("x-livy-gateway-held-ms"))).toBeGreaterThan(0);
    expect(isReady((await getSession(ns, "sleepy")) as never)).toBe(true);
    expect(metricValue(await gate.metrics(), "livy_gateway_wakes_total")).toBeGreaterThanOrEqual(1);
  });

  it("answers 50 concurrent statements to a parked LivySession, each with its own result", async () => {
    await parkedSession("crowd");
    const wakesBefore = metricValue(await gate.metrics(), "livy_gateway_wakes_total");
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => runThroughGateway(gate.url, ns, "crowd", runner, `${i} * 2`)),
    );
    expect(results.map((r) => textOf(r.statement))).toEqual(
      Array.from({ length: 50 }, (_, i) => String(i * 2)),
    );
    expect(new Set(results.map((r) => r.statement.id)).size).toBe(50);
    // one demand for all of them
    expect(metricValue(await gate.metrics(), "livy_gateway_wakes_total") - wakesBefore).toBe(1);
    const livyId = (await getSession(ns, "crowd"))?.status?.livySessionId ?? -1;
    expect((await livyStatements(livyId)).total_statements).toBe(50);
  });

  it("refuses with 503 and Retry-After when the session's queue is full", async () => {
    const small = await startGateway({ name: "small", args: ["--max-held-per-session", "3"] });
    try {
      await parkedSession("full");
      const answers = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          gw(small.url, ns, "full", "POST", "/sessions/0/statements", {
            token: runner,
            body: { code: `${i}` },
          }),
        ),
      );
      const refused = answers.filter((a) => a.status === 503);
      expect(answers.filter((a) => a.status === 201)).toHaveLength(3);
      expect(refused).toHaveLength(3);
      for (const r of refused) {
        expect(r.headers.get("retry-after")).toBe("5");
        expect((r.json as { msg: string }).msg).toContain("too many requests are waiting");
      }
      expect(metricValue(await small.metrics(), "livy_gateway_queue_full_total")).toBe(3);
    } finally {
      expect(await small.stop()).toBe(0);
    }
  });

  it("gives a clear timeout when the session is not Ready by the request's deadline, and runs nothing", async () => {
    await parkedSession("slow");
    await standinConfig({ sessionStartupMs: 4_000 });
    try {
      const t0 = Date.now();
      const r = await gw(gate.url, ns, "slow", "POST", "/sessions/0/statements", {
        token: runner,
        body: { code: "1" },
        headers: { prefer: "wait=1" },
      });
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(r.status).toBe(504);
      expect(r.headers.get("retry-after")).toBe("5");
      expect((r.json as { msg: string }).msg).toMatch(
        /did not become Ready within 1 s \(starting: .*\); the request was not sent to Livy, retrying is safe/,
      );
      const ls = await waitFor(ns, "slow", isReady, "Ready", 30_000);
      expect((await livyStatements(ls.status?.livySessionId ?? -1)).total_statements).toBe(0);
    } finally {
      await standinConfig({ sessionStartupMs: 300 });
    }
  });

  it("a replica killed while holding a request: the client's retry on another replica runs it once", async () => {
    const b = await startGateway({ name: "b" });
    try {
      await parkedSession("killheld");
      await standinConfig({ sessionStartupMs: 3_000 });
      const first = gw(b.url, ns, "killheld", "POST", "/sessions/0/statements", {
        token: runner,
        body: { code: "5 + 5" },
      }).catch((err: unknown) => err);
      await until(
        "the request held",
        async () => metricValue(await b.metrics(), "livy_gateway_held_requests") === 1,
      );
      await b.kill();
      expect(await first).toBeInstanceOf(Error);
      await standinConfig({ sessionStartupMs: 300 });
      const { statement } = await runThroughGateway(gate.url, ns, "killheld", runner, "5 + 5");
      expect(textOf(statement)).toBe("10");
      const livyId = (await getSession(ns, "killheld"))?.status?.livySessionId ?? -1;
      expect((await livyStatements(livyId)).total_statements).toBe(1);
    } finally {
      await standinConfig({ sessionStartupMs: 300 });
      await b.kill();
    }
  });

  it("a replica killed after Livy took the statement: the retry with the same Idempotency-Key gets it, not a second run", async () => {
    const b = await startGateway({ name: "c" });
    const livyId = (await getSession(ns, "ready"))?.status?.livySessionId ?? -1;
    const before = (await livyStatements(livyId)).total_statements;
    try {
      const posts = await statementPosts();
      await standinConfig({ answerDelayMs: 3_000 });
      const key = `kill-${Date.now()}`;
      const first = gw(b.url, ns, "ready", "POST", "/sessions/0/statements", {
        token: runner,
        body: { code: "7 * 6" },
        headers: { "idempotency-key": key },
      }).catch((err: unknown) => err);
      await until("Livy took the statement", async () => (await statementPosts()) === posts + 1);
      await b.kill();
      expect(await first).toBeInstanceOf(Error);
      await standinConfig({ answerDelayMs: 0 });
      const retry = await gw(gate.url, ns, "ready", "POST", "/sessions/0/statements", {
        token: runner,
        body: { code: "7 * 6" },
        headers: { "idempotency-key": key },
      });
      expect(retry.status).toBe(201);
      expect(retry.headers.get("idempotent-replayed")).toBe("true");
      expect((retry.json as { code: string }).code).toBe("7 * 6");
      expect((await livyStatements(livyId)).total_statements).toBe(before + 1);
    } finally {
      await standinConfig({ answerDelayMs: 0 });
      await b.kill();
    }
  });

  it("finds a statement whose answer Livy lost instead of sending it twice", async () => {
    const livyId = (await getSession(ns, "ready"))?.status?.livySessionId ?? -1;
    const before = (await livyStatements(livyId)).total_statements;
    const impatient = await startGateway({ name: "lost", args: ["--upstream-timeout-ms", "1000"] });
    try {
      // Livy takes the statement at once but answers after 3 s: the gateway gives up on the answer at 1 s
      await standinConfig({ answerDelayMs: 3_000 });
      const r = gw(impatient.url, ns, "ready", "POST", "/sessions/0/statements", {
        token: runner,
        body: { code: "3 * 3" },
      });
      await until(
        "Livy holds the statement",
        async () => (await livyStatements(livyId)).total_statements === before + 1,
      );
      await standinConfig({ answerDelayMs: 0 });
      const answer = await r;
      expect(answer.status).toBe(201);
      expect(answer.headers.get("idempotent-replayed")).toBe("true");
      expect((await livyStatements(livyId)).total_statements).toBe(before + 1);
      expect(
        metricValue(await impatient.metrics(), "livy_gateway_upstream_errors_total", { kind: "unknown" }),
      ).toBe(1);
    } finally {
      await standinConfig({ answerDelayMs: 0 });
      await impatient.stop();
    }
  });

  it("drains on SIGTERM: a held request is still answered, then the process exits 0", async () => {
    const b = await startGateway({ name: "drain" });
    await parkedSession("drain");
    await standinConfig({ sessionStartupMs: 2_000 });
    try {
      const held = gw(b.url, ns, "drain", "POST", "/sessions/0/statements", {
        token: runner,
        body: { code: "8 + 8" },
      });
      await until(
        "the request held",
        async () => metricValue(await b.metrics(), "livy_gateway_held_requests") === 1,
      );
      const exited = b.stop();
      await until("unready while draining", async () => {
        const readyz = await fetch(`http://127.0.0.1:${b.httpPort}/readyz`).catch(() => null);
        return readyz === null || readyz.status === 503;
      });
      const post = await held;
      expect(post.status, b.logs().slice(-2000)).toBe(201);
      expect(post.headers.get("connection")).toBe("close");
      expect(await exited).toBe(0);
    } finally {
      await standinConfig({ sessionStartupMs: 300 });
      await b.kill();
    }
  });

  it("never logs a credential and exports its metrics", async () => {
    const logs = gate.logs();
    for (const t of [runner, viewer, nobody]) {
      expect(logs).not.toContain(t);
      expect(logs).not.toContain(t.slice(-20));
    }
    const m = await gate.metrics();
    expect(
      metricValue(m, "livy_gateway_requests_total", { op: "postStatement", code: "201" }),
    ).toBeGreaterThan(50);
    expect(metricValue(m, "livy_gateway_requests_total", { code: "401" })).toBeGreaterThanOrEqual(3);
    expect(metricValue(m, "livy_gateway_hold_seconds_count", { outcome: "ready" })).toBeGreaterThanOrEqual(
      50,
    );
    expect(metricValue(m, "livy_gateway_livysessions")).toBeGreaterThanOrEqual(1);
    expect(
      metricValue(m, "livy_gateway_decision_cache_lookups", { cache: "authn", result: "hit" }),
    ).toBeGreaterThan(0);
  });
});
