import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  credentialLivyConf,
  credentialSecretName,
  type LivySession,
  newSessionKey,
  parseLivySession,
  sessionCredential,
} from "../../src/api/index.ts";
import { discoveryDocument, frontProxyFromConfigMap, statusBody } from "../../src/gateway/aggregation.ts";
import { credentialOf, forbiddenMessage } from "../../src/gateway/auth.ts";
import { DecisionCache } from "../../src/gateway/cache.ts";
import { GATEWAY_FIELDS, GatewayConfigError, loadGatewayConfig } from "../../src/gateway/config.ts";
import { Holds } from "../../src/gateway/holds.ts";
import { Lanes } from "../../src/gateway/order.ts";
import {
  clientSession,
  findMarked,
  markCode,
  rewriteAnswer,
  statementKind,
  unmarkCode,
} from "../../src/gateway/rewrite.ts";
import { parseRoute, verbOf } from "../../src/gateway/routes.ts";
import { selfSignedCertificate } from "../../src/gateway/selfsigned.ts";
import { preferWaitMs } from "../../src/gateway/server.ts";
import { upstreamAuthorization } from "../../src/gateway/upstream-auth.ts";
import {
  afterChange,
  checkCreateBody,
  decide,
  livyStateOf,
  sparkUiLocation,
  sparkUiTarget,
  viewOf,
} from "../../src/gateway/view.ts";
import type { SessionKey } from "../../src/kube/session-key.ts";

const T = "2026-01-01T00:00:00Z";
const cond = (type: string, status: string, reason: string, message = "") => ({
  type,
  status,
  reason,
  message,
  lastTransitionTime: T,
});

function lvs(
  opts: {
    spec?: Record<string, unknown>;
    status?: Record<string, unknown>;
    annotations?: Record<string, string>;
    deleting?: boolean;
  } = {},
): LivySession {
  const r = parseLivySession({
    apiVersion: "livy.dev/v1alpha1",
    kind: "LivySession",
    metadata: {
      name: "nb",
      namespace: "team",
      resourceVersion: "7",
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
      ...(opts.deleting ? { deletionTimestamp: T } : {}),
    },
    spec: { kind: "pyspark", ...opts.spec },
    ...(opts.status ? { status: opts.status } : {}),
  });
  if (!r.success) throw new Error(r.message);
  return r.data;
}

const ready = () =>
  lvs({
    status: {
      phase: "Ready",
      serverURL: "http://livy-nb.team.svc:8998",
      livySessionId: 3,
      livySessionState: "idle",
      conditions: [cond("Ready", "True", "Ready"), cond("Idle", "False", "Active")],
    },
  });
const parked = (annotations?: Record<string, string>) =>
  lvs({
    annotations,
    status: {
      phase: "Idle",
      demandedAt: "a",
      conditions: [cond("Ready", "False", "IdleTimeout", "no activity"), cond("Idle", "True", "IdleTimeout")],
    },
  });
const failed = () =>
  lvs({
    status: {
      phase: "Failed",
      conditions: [
        cond("Ready", "False", "StartupTimeout", "not Ready within 5m"),
        cond("Idle", "False", "Active"),
      ],
    },
  });
const starting = () =>
  lvs({
    status: {
      phase: "Starting",
      conditions: [cond("Ready", "False", "Starting", "deploying the Livy server")],
    },
  });

const route = (method: string, url: string) => {
  const r = parseRoute(method, url);
  if (!r) throw new Error(`no route for ${url}`);
  return r;
};
const act = (method: string, path: string, obj: LivySession | null, createBodyError?: string | null) =>
  decide(route(method, `/namespaces/team/livysessions/nb${path}`), obj, method, {
    livyVersion: "0.9.0-incubating",
    createBodyError: createBodyError ?? null,
  });

describe("gateway routes", () => {
  it("parses the LivySession prefix and Livy's operations under it", () => {
    const r = route("POST", "/namespaces/team/livysessions/nb/sessions/0/statements?x=1");
    expect(r).toMatchObject({ namespace: "team", name: "nb", prefix: "/namespaces/team/livysessions/nb" });
    expect(r.livyPath).toBe("/sessions/0/statements");
    expect(r.search).toBe("?x=1");
    expect(r.livy).toEqual({ op: "postStatement" });
    const ops = (m: string, p: string) => route(m, `/namespaces/team/livysessions/nb${p}`).livy;
    expect(ops("GET", "/version")).toEqual({ op: "version" });
    expect(ops("GET", "/sessions")).toEqual({ op: "listSessions" });
    expect(ops("GET", "/sessions/")).toEqual({ op: "listSessions" });
    expect(ops("POST", "/sessions")).toEqual({ op: "createSession" });
    expect(ops("GET", "/sessions/0")).toEqual({ op: "getSession" });
    expect(ops("GET", "/sessions/nb")).toEqual({ op: "getSession" }); // by name, as Livy 0.8+ allows
    expect(ops("DELETE", "/sessions/0")).toEqual({ op: "deleteSession" });
    expect(ops("GET", "/sessions/0/state")).toEqual({ op: "sessionState" });
    expect(ops("GET", "/sessions/0/log")).toEqual({ op: "sessionLog" });
    expect(ops("GET", "/sessions/0/statements")).toEqual({ op: "listStatements" });
    expect(ops("GET", "/sessions/0/statements/12")).toEqual({ op: "getStatement", statementId: "12" });
    expect(ops("POST", "/sessions/0/statements/12/cancel")).toEqual({
      op: "cancelStatement",
      statementId: "12",
    });
    expect(ops("POST", "/sessions/0/completion")).toEqual({ op: "completion" });
    expect(ops("POST", "/sessions/0/upload-jar")).toEqual({ op: "sessionOther", rest: "/upload-jar" });
    expect(ops("GET", "/sessions/1")).toEqual({ op: "unknownSession", id: "1" });
    expect(ops("POST", "/batches")).toEqual({ op: "batches" });
    expect(ops("GET", "/ui")).toEqual({ op: "notFound" });
    expect(ops("PUT", "/sessions/0")).toEqual({ op: "methodNotAllowed", allow: "GET, DELETE" });
    expect(ops("DELETE", "/sessions/0/statements")).toEqual({ op: "methodNotAllowed", allow: "GET, POST" });
  });

  it("refuses paths outside a LivySession and names that cannot exist", () => {
    expect(parseRoute("GET", "/sessions")).toBeNull();
    expect(parseRoute("GET", "/namespaces/Team/livysessions/nb/sessions")).toBeNull();
    expect(parseRoute("GET", "/namespaces/team/livysessions/%zz/sessions")).toBeNull();
    expect(parseRoute("GET", "/namespaces/team/livysessions/a.b/sessions")).toBeNull();
  });

  it("maps HTTP methods to the verbs the API server uses for proxies", () => {
    expect(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"].map(verbOf)).toEqual([
      "get",
      "get",
      "create",
      "update",
      "patch",
      "delete",
    ]);
  });
});

describe("the Spark UI through the gateway", () => {
  const withUi = () => {
    const r = ready();
    if (r.status) r.status.sparkUiURL = "http://livy-nb.team.svc:4040";
    return r;
  };
  it("routes GET and HEAD under {prefix}/sparkui, keeping the UI's own path and trailing slash", () => {
    expect(route("GET", "/namespaces/team/livysessions/nb/sparkui/jobs/?id=1").livy).toEqual({
      op: "sparkUi",
      path: "/jobs/",
    });
    expect(route("HEAD", "/namespaces/team/livysessions/nb/sparkui").livy).toEqual({
      op: "sparkUi",
      path: "/",
    });
    expect(route("POST", "/namespaces/team/livysessions/nb/sparkui/jobs/").livy).toEqual({
      op: "methodNotAllowed",
      allow: "GET, HEAD",
    });
    // not a prefix of another word
    expect(route("GET", "/namespaces/team/livysessions/nb/sparkuix").livy.op).toBe("notFound");
    const agg = parseRoute(
      "GET",
      "/apis/livy.dev/gateway/namespaces/team/livysessions/nb/proxy/sparkui/stages/",
      { aggregated: true },
    );
    expect(agg?.livy).toEqual({ op: "sparkUi", path: "/stages/" });
    expect(agg?.prefix).toBe("/apis/livy.dev/gateway/namespaces/team/livysessions/nb/proxy");
  });

  it("goes to status.sparkUiURL while Ready, and never wakes a session to show it", () => {
    expect(
      sparkUiTarget(withUi(), route("GET", "/namespaces/team/livysessions/nb/sparkui/jobs/?x=1")),
    ).toEqual({
      url: "http://livy-nb.team.svc:4040/jobs/?x=1",
    });
    const r = route("GET", "/namespaces/team/livysessions/nb/sparkui/");
    expect(sparkUiTarget(parked(), r)).toMatchObject({ type: "answer", status: 503 });
    expect(sparkUiTarget(starting(), r)).toMatchObject({ type: "answer", status: 503 });
    expect(sparkUiTarget(null, r)).toMatchObject({ type: "answer", status: 404 });
    // the UI's kill links act on a GET: refused
    expect(
      sparkUiTarget(withUi(), route("GET", "/namespaces/team/livysessions/nb/sparkui/jobs/job/kill/?id=1")),
    ).toMatchObject({ type: "answer", status: 403 });
    // Ready without a UI URL (a server URL template without {port})
    expect(sparkUiTarget(ready(), r)).toMatchObject({
      type: "answer",
      status: 404,
      body: { msg: expect.stringContaining("status.sparkUiURL") },
    });
  });

  it("turns the UI's redirects into paths under the prefix", () => {
    const up = "http://livy-nb.team.svc:4040/jobs";
    const ctx = "/namespaces/team/livysessions/nb/sparkui";
    // Spark's own redirect carries the forwarded context already, made absolute by Jetty
    expect(sparkUiLocation(`http://livy-nb.team.svc:4040${ctx}/jobs/`, up, ctx)).toBe(`${ctx}/jobs/`);
    // Jetty's trailing-slash redirect does not
    expect(sparkUiLocation("http://livy-nb.team.svc:4040/jobs/", up, ctx)).toBe(`${ctx}/jobs/`);
    expect(sparkUiLocation("/stages/?id=2", up, ctx)).toBe(`${ctx}/stages/?id=2`);
    // elsewhere stays elsewhere
    expect(sparkUiLocation("https://example.org/x", up, ctx)).toBe("https://example.org/x");
  });
});

describe("gateway view of a LivySession", () => {
  it("reads the status as ready, starting, parked, failed, suspended or deleting", () => {
    expect(viewOf(ready())).toEqual({
      kind: "ready",
      serverURL: "http://livy-nb.team.svc:8998",
      livySessionId: 3,
      livyState: "idle",
    });
    expect(viewOf(starting()).kind).toBe("starting");
    expect(viewOf(lvs()).kind).toBe("starting"); // just created: no status yet
    expect(viewOf(parked()).kind).toBe("parked");
    expect(viewOf(failed())).toMatchObject({ kind: "failed", reason: "StartupTimeout" });
    expect(viewOf(lvs({ spec: { suspend: true } })).kind).toBe("suspended");
    expect(viewOf(lvs({ deleting: true })).kind).toBe("deleting");
  });

  it("treats a demand the operator has not served yet as starting", () => {
    expect(viewOf(parked({ "livy.dev/demanded-at": "a" })).kind).toBe("parked"); // served already
    expect(viewOf(parked({ "livy.dev/demanded-at": "b" })).kind).toBe("starting");
  });

  it("shows Livy states a plain client understands", () => {
    expect(livyStateOf(viewOf(parked()))).toBe("idle");
    expect(livyStateOf(viewOf(starting()))).toBe("starting");
    expect(livyStateOf(viewOf(failed()))).toBe("dead");
    expect(livyStateOf(viewOf(lvs({ spec: { suspend: true } })))).toBe("not_started");
  });
});

describe("gateway decisions", () => {
  it("forwards to the current Livy session when Ready, with Livy's id in the path", () => {
    expect(act("POST", "/sessions/0/statements", ready())).toEqual({
      type: "forward",
      method: "POST",
      path: "/sessions/3/statements",
      transform: "statementCreated",
    });
    expect(act("GET", "/sessions/0/statements?from=2&size=5", ready())).toMatchObject({
      path: "/sessions/3/statements?from=2&size=5",
      transform: "statementList",
    });
    expect(act("GET", "/sessions", ready())).toMatchObject({
      path: "/sessions/3",
      transform: "sessionAsList",
    });
    expect(act("POST", "/sessions", ready())).toMatchObject({
      path: "/sessions/3",
      transform: "sessionCreated",
    });
  });

  it("holds statements while the session starts, waking it when parked", () => {
    expect(act("POST", "/sessions/0/statements", parked())).toEqual({ type: "hold", wake: true });
    expect(act("POST", "/sessions/0/statements", starting())).toEqual({ type: "hold", wake: false });
  });

  it("answers reads of a session that is down without waking it", () => {
    const a = act("GET", "/sessions/0", parked());
    expect(a).toMatchObject({ type: "answer", status: 200, body: { id: 0, state: "idle", kind: "pyspark" } });
    expect(a.type === "answer" && a.wake).toBeFalsy();
    expect(act("GET", "/sessions/0/state", starting())).toMatchObject({ body: { id: 0, state: "starting" } });
    expect(act("GET", "/sessions/0/statements", parked())).toMatchObject({
      body: { total_statements: 0, statements: [] },
    });
    expect(act("GET", "/sessions/0/statements/4", parked())).toMatchObject({ status: 404 });
    expect(act("POST", "/sessions/0/completion", parked())).toMatchObject({ body: { candidates: [] } });
    expect(act("GET", "/version", parked())).toMatchObject({ body: { version: "0.9.0-incubating" } });
  });

  it("attaches POST /sessions to the LivySession, waking it when parked or failed", () => {
    for (const obj of [parked(), failed()]) {
      const a = act("POST", "/sessions", obj);
      expect(a).toMatchObject({
        type: "answer",
        status: 201,
        wake: true,
        body: { id: 0, state: "starting" },
      });
      expect(a.type === "answer" && a.headers?.location).toBe("/namespaces/team/livysessions/nb/sessions/0");
    }
    expect(act("POST", "/sessions", starting())).toMatchObject({ status: 201, wake: false });
    expect(act("POST", "/sessions", lvs({ spec: { suspend: true } }))).toMatchObject({ status: 409 });
    expect(act("POST", "/sessions", parked(), "nope")).toMatchObject({ status: 400, body: { msg: "nope" } });
  });

  it("detaches on DELETE instead of ending the shared session", () => {
    expect(act("DELETE", "/sessions/0", ready())).toMatchObject({ status: 200, body: { msg: "deleted" } });
  });

  it("refuses code for failed and suspended sessions at once, naming why", () => {
    const f = act("POST", "/sessions/0/statements", failed());
    expect(f).toMatchObject({ type: "answer", status: 409 });
    expect(JSON.stringify(f)).toContain("StartupTimeout");
    expect(act("POST", "/sessions/0/statements", lvs({ spec: { suspend: true } }))).toMatchObject({
      status: 409,
    });
  });

  it("answers unknown sessions, missing LivySessions and batches with 404", () => {
    expect(act("GET", "/sessions/7", ready())).toMatchObject({
      status: 404,
      body: { msg: "Session '7' not found." },
    });
    expect(act("GET", "/sessions/0", null)).toMatchObject({ status: 404 });
    expect(act("GET", "/sessions/0", lvs({ deleting: true }))).toMatchObject({ status: 404 });
    expect(act("GET", "/batches", ready())).toMatchObject({ status: 404 });
  });

  it("tells a held request when to go on", () => {
    const r = route("POST", "/namespaces/team/livysessions/nb/sessions/0/statements");
    expect(afterChange(ready(), r)).toBe("ready");
    expect(afterChange(starting(), r)).toBe("wait");
    expect(afterChange(parked(), r)).toBe("wait");
    expect(afterChange(failed(), r)).toMatchObject({ status: 409 });
    expect(afterChange(null, r)).toMatchObject({ status: 404 });
  });
});

describe("POST /sessions bodies", () => {
  const obj = lvs({
    spec: { session: { driverMemory: "1g", conf: { "spark.a": "1", "spark.b": "2" }, jars: ["x.jar"] } },
  });
  it("accepts what the spec says, or less, and the fields the gateway manages", () => {
    expect(checkCreateBody("", obj)).toBeNull();
    expect(checkCreateBody('{"kind":"pyspark"}', obj)).toBeNull();
    expect(checkCreateBody('{"kind":"shared","name":"s1","heartbeatTimeoutInSecond":60}', obj)).toBeNull();
    expect(
      checkCreateBody('{"driverMemory":"1g","conf":{"spark.a":"1"},"jars":["x.jar"],"files":[]}', obj),
    ).toBeNull();
  });
  it("refuses another kind, other settings and unknown fields, naming each", () => {
    expect(checkCreateBody('{"kind":"spark"}', obj)).toMatch(/kind "spark" \(the session is pyspark/);
    const m = checkCreateBody('{"driverMemory":"4g","conf":{"spark.a":"9"},"bogus":1}', obj) ?? "";
    expect(m).toContain('driverMemory="4g"');
    expect(m).toContain("conf=");
    expect(m).toContain("unknown field(s) bogus");
    expect(m).toContain("kubectl edit livysession nb -n team");
    expect(checkCreateBody("[1]", obj)).toMatch(/JSON object/);
    expect(checkCreateBody("{", obj)).toMatch(/not JSON/);
  });
});

describe("request markers and rewriting", () => {
  it("marks code with a comment in the statement's language and takes it out again", () => {
    expect(markCode("1 + 1", "pyspark", "rABCDEFGH")).toBe("# livy-gateway request rABCDEFGH\n1 + 1");
    expect(markCode("val x = 1", "spark", "rABCDEFGH")).toBe("// livy-gateway request rABCDEFGH\nval x = 1");
    expect(markCode("SELECT 1", "sql", "rABCDEFGH")).toBe("-- livy-gateway request rABCDEFGH\nSELECT 1");
    expect(markCode("1", "cobol", "rABCDEFGH")).toBeNull();
    expect(markCode("1", "pyspark", "bad id!")).toBeNull();
    for (const kind of ["pyspark", "spark", "sql", "sparkr"]) {
      const marked = markCode("%table df\nx", kind, "k0123456789") ?? "";
      expect(unmarkCode(marked)).toEqual({ code: "%table df\nx", id: "k0123456789" });
    }
    expect(unmarkCode("# just a comment\n1")).toEqual({ code: "# just a comment\n1" });
    expect(statementKind({ kind: "sql" }, "pyspark")).toBe("sql");
    expect(statementKind({ kind: "shared" }, "spark")).toBe("spark");
    expect(statementKind({}, "spark")).toBe("spark");
  });

  it("finds the newest statement of a request among Livy's list", () => {
    const list = {
      total_statements: 3,
      statements: [
        { id: 2, code: "# livy-gateway request kAAAAAAAA\n3" },
        { id: 1, code: "# livy-gateway request kBBBBBBBB\n2" },
        { id: 0, code: "1" },
      ],
    };
    expect(findMarked(list, "kBBBBBBBB")?.id).toBe(1);
    expect(findMarked(list, "kCCCCCCCC")).toBeUndefined();
    expect(findMarked("garbage", "kBBBBBBBB")).toBeUndefined();
  });

  it("shows the LivySession's session as id 0 without internal URLs, and statements without markers", () => {
    const obj = ready();
    const ctx = { obj, prefix: "/namespaces/team/livysessions/nb" };
    const s = { id: 3, name: "team.nb.x.0", state: "idle", appInfo: { sparkUiUrl: "http://10.0.0.5:4040" } };
    expect(clientSession(s, obj)).toEqual({
      id: 0,
      name: "nb",
      state: "idle",
      appInfo: { sparkUiUrl: null },
    });
    expect(rewriteAnswer("sessionAsList", 200, s, ctx).body).toMatchObject({
      total: 1,
      sessions: [{ id: 0 }],
    });
    expect(rewriteAnswer("sessionCreated", 200, s, ctx)).toMatchObject({
      status: 201,
      location: "/namespaces/team/livysessions/nb/sessions/0",
    });
    const st = { id: 5, code: "# livy-gateway request rABCDEFGH\n1 + 1", state: "waiting", output: null };
    expect(rewriteAnswer("statementCreated", 201, st, ctx)).toEqual({
      status: 201,
      body: { id: 5, code: "1 + 1", state: "waiting", output: null },
      location: "/namespaces/team/livysessions/nb/sessions/0/statements/5",
    });
    expect(
      rewriteAnswer("statementList", 200, { total_statements: 1, statements: [st] }, ctx).body,
    ).toMatchObject({
      statements: [{ code: "1 + 1" }],
    });
    expect(rewriteAnswer("state", 200, { id: 3, state: "busy" }, ctx).body).toEqual({ id: 0, state: "busy" });
    // Livy's errors are its words about the request: unchanged
    expect(rewriteAnswer("session", 404, { msg: "Session '3' not found." }, ctx).body).toEqual({
      msg: "Session '3' not found.",
    });
  });
});

describe("gateway authentication", () => {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  it("takes the token from Bearer, or from Basic auth's password", () => {
    expect(credentialOf(undefined)).toBeNull();
    expect(credentialOf("Bearer abc.def")).toEqual({ token: "abc.def" });
    expect(credentialOf("bearer abc")).toEqual({ token: "abc" });
    expect(credentialOf(`Basic ${b64("anyone:tok:with:colons")}`)).toEqual({ token: "tok:with:colons" });
    expect(credentialOf(`Basic ${b64(":tok")}`)).toEqual({ token: "tok" });
    expect(credentialOf(`Basic ${b64("user")}`)).toMatchObject({
      error: expect.stringContaining("password"),
    });
    expect(credentialOf(`Basic ${b64("user:")}`)).toMatchObject({ error: expect.stringContaining("empty") });
    expect(credentialOf("Bearer ")).toMatchObject({ error: expect.any(String) });
    expect(credentialOf("Negotiate xyz")).toMatchObject({ error: expect.stringContaining("negotiate") });
  });

  it("says what is missing in a 403", () => {
    const m = forbiddenMessage("system:serviceaccount:a:b", {
      namespace: "team",
      name: "nb",
      verb: "create",
    });
    expect(m).toBe(
      'livysessions.livy.dev "nb" is forbidden: User "system:serviceaccount:a:b" cannot create resource ' +
        '"livysessions/proxy" in API group "livy.dev" in the namespace "team" (grant create on livysessions/proxy; ' +
        "the edit role has get, create and delete, view has get)",
    );
  });

  it("reads Prefer: wait", () => {
    expect(preferWaitMs(undefined)).toBeUndefined();
    expect(preferWaitMs("wait=10")).toBe(10_000);
    expect(preferWaitMs("respond-async, wait=1.5")).toBe(1_500);
    expect(preferWaitMs("handling=lenient")).toBeUndefined();
  });
});

describe("decision cache", () => {
  it("expires entries, evicts the least recently used, and shares concurrent misses", async () => {
    const c = new DecisionCache<number>(2);
    c.set("a", 1, 1000, 0);
    c.set("b", 2, 1000, 0);
    expect(c.get("a", 10)).toBe(1); // a is now the most recently used
    c.set("c", 3, 1000, 20);
    expect(c.get("b", 30)).toBeUndefined();
    expect(c.get("a", 30)).toBe(1);
    expect(c.get("a", 1001)).toBeUndefined();
    c.set("z", 9, 0);
    expect(c.get("z")).toBeUndefined(); // ttl 0: not kept
    let calls = 0;
    const compute = async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 10));
      return 42;
    };
    const results = await Promise.all(
      Array.from({ length: 5 }, () => c.getOrCompute("k", compute, () => 1000)),
    );
    expect(results).toEqual([42, 42, 42, 42, 42]);
    expect(calls).toBe(1);
    await expect(
      c.getOrCompute(
        "e",
        () => Promise.reject(new Error("boom")),
        () => 1000,
      ),
    ).rejects.toThrow("boom");
    expect(c.get("e")).toBeUndefined(); // failures are not cached
  });
});

describe("holds", () => {
  it("bounds requests per session and in all, and wakes waiters on change", async () => {
    const h = new Holds({ maxPerSession: 2, maxTotal: 3 });
    expect(h.tryEnter("a")).toBe(true);
    expect(h.tryEnter("a")).toBe(true);
    expect(h.tryEnter("a")).toBe(false);
    expect(h.tryEnter("b")).toBe(true);
    expect(h.tryEnter("c")).toBe(false); // 3 in all
    h.leave("a");
    expect(h.tryEnter("c")).toBe(true);
    const t0 = Date.now();
    const w = h.waitForChange("a", 10_000);
    h.notify("a");
    await w;
    expect(Date.now() - t0).toBeLessThan(1000);
    const ac = new AbortController();
    const w2 = h.waitForChange("a", 10_000, ac.signal);
    ac.abort();
    await w2;
    await h.waitForChange("a", 5); // times out by itself
  });
});

describe("gateway configuration", () => {
  it("has defaults, reads flags and LIVY_GATEWAY_* variables, and names bad settings", () => {
    const c = loadGatewayConfig([], {});
    expect(c).toMatchObject({ port: 8998, httpPort: 8080, holdTimeoutMs: 600_000, maxHeldPerSession: 256 });
    expect(loadGatewayConfig(["--port", "9000"], { LIVY_GATEWAY_MAX_HELD_PER_SESSION: "5" })).toMatchObject({
      port: 9000,
      maxHeldPerSession: 5,
    });
    expect(() => loadGatewayConfig(["--port", "x"], {})).toThrow(GatewayConfigError);
    expect(() => loadGatewayConfig(["--tls-cert-file", "/c"], {})).toThrow(
      /--tls-cert-file and --tls-key-file/,
    );
    expect(() => loadGatewayConfig([], { LIVY_GATEWAY_HOLD_TIMEOUT_MS: "-1" })).toThrow(
      /--hold-timeout-ms \/ LIVY_GATEWAY_HOLD_TIMEOUT_MS/,
    );
  });
});

describe("gateway documentation and chart", () => {
  const root = join(import.meta.dirname, "..", "..");
  const doc = readFileSync(join(root, "docs", "gateway.md"), "utf8");
  it.each(GATEWAY_FIELDS.map((f) => f[0]))("docs/gateway.md documents --%s", (flag) => {
    expect(doc).toContain(`--${flag}`);
  });
  it("the chart's gateway.config defaults are the gateway's own", () => {
    const values = parse(readFileSync(join(root, "charts", "livy-operator", "values.yaml"), "utf8")) as {
      gateway: { config: Record<string, unknown> };
    };
    const defaults = loadGatewayConfig([], {}) as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(values.gateway.config)) expect(v, k).toEqual(defaults[k]);
  });
});

describe("lanes", () => {
  it("lets statement POSTs of one session go in the order they arrived, whatever order they ask in", async () => {
    const lanes = new Lanes();
    const order: number[] = [];
    const tickets = [0, 1, 2, 3].map(() => lanes.take("ns/a"));
    const other = lanes.take("ns/b"); // another session is not held up
    await other.turn();
    other.release();
    const runs = [3, 1, 0, 2].map(async (i) => {
      const t = tickets[i];
      if (!t) throw new Error("no ticket");
      await t.turn();
      order.push(i);
      await new Promise((r) => setTimeout(r, 5));
      t.release();
    });
    await Promise.all(runs);
    expect(order).toEqual([0, 1, 2, 3]);
    // a released ticket that never took its turn (the client left) does not block the next
    const [x, y] = [lanes.take("ns/c"), lanes.take("ns/c")];
    x.release();
    x.release(); // idempotent
    await y.turn();
    y.release();
    expect(lanes.size).toBe(0);
  });
});

describe("per-session credentials", () => {
  const key = Buffer.alloc(32, 7);
  it("derive from the shared key and the LivySession's uid", () => {
    const a = sessionCredential(key, "uid-a");
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(sessionCredential(key, "uid-a")).toBe(a);
    expect(sessionCredential(key, "uid-b")).not.toBe(a);
    expect(sessionCredential(Buffer.alloc(32, 8), "uid-a")).not.toBe(a);
    expect(() => sessionCredential(Buffer.alloc(8), "uid-a")).toThrow(/shorter/);
    expect(Buffer.from(newSessionKey(), "base64")).toHaveLength(32);
    expect(credentialSecretName("nb")).toBe("livy-nb-credential");
    expect(credentialLivyConf()).toMatchObject({
      "livy.server.auth.type": "session",
      "livy.server.auth.session.class": "dev.livyoperator.auth.SessionTokenFilter",
      "livy.server.auth.session.param.token-file": "/etc/livy/credential/token",
    });
  });

  it("are what the gateway presents, unless the LivySession brings its own authentication", async () => {
    const obj = ready();
    obj.metadata.uid = "uid-a";
    const sessionKey = { current: key } as unknown as SessionKey;
    const kube = {} as never;
    expect(await upstreamAuthorization(obj, { key: sessionKey, kube, readAuthSecrets: false })).toEqual({
      authorization: `Bearer ${sessionCredential(key, "uid-a")}`,
    });
    expect(await upstreamAuthorization(obj, { key: null, kube, readAuthSecrets: false })).toEqual({});
    const own = lvs({ spec: { auth: { type: "Bearer", secretName: "livy-token" } } });
    expect(await upstreamAuthorization(own, { key: sessionKey, kube, readAuthSecrets: false })).toEqual({});
    const secrets = {
      getOrNull: async () => ({ data: { token: Buffer.from("s3cret").toString("base64") } }),
    } as unknown as never;
    expect(
      await upstreamAuthorization(own, { key: sessionKey, kube: secrets, readAuthSecrets: true }),
    ).toEqual({
      authorization: "Bearer s3cret",
    });
  });
});

describe("the aggregation layer", () => {
  it("reads the front proxy's settings as the API server publishes them", () => {
    expect(frontProxyFromConfigMap(undefined)).toBeNull();
    expect(
      frontProxyFromConfigMap({
        "requestheader-client-ca-file": "PEM",
        "requestheader-allowed-names": '["front-proxy-client"]',
        "requestheader-username-headers": '["X-Remote-User"]',
        "requestheader-group-headers": '["X-Remote-Group"]',
        "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
      }),
    ).toEqual({
      ca: "PEM",
      allowedNames: ["front-proxy-client"],
      usernameHeaders: ["X-Remote-User"],
      groupHeaders: ["X-Remote-Group"],
      extraPrefixes: ["X-Remote-Extra-"],
    });
    expect(frontProxyFromConfigMap({ "requestheader-client-ca-file": "PEM" })?.usernameHeaders).toEqual([
      "X-Remote-User",
    ]);
  });

  it("routes only the proxy subresource under /apis/livy.dev/gateway", () => {
    const r = parseRoute(
      "POST",
      "/apis/livy.dev/gateway/namespaces/team/livysessions/nb/proxy/sessions/0/statements",
      {
        aggregated: true,
      },
    );
    expect(r).toMatchObject({
      namespace: "team",
      name: "nb",
      prefix: "/apis/livy.dev/gateway/namespaces/team/livysessions/nb/proxy",
      livy: { op: "postStatement" },
    });
    expect(
      parseRoute("GET", "/apis/livy.dev/gateway/namespaces/team/livysessions/nb/sessions/0", {
        aggregated: true,
      }),
    ).toBeNull();
    expect(parseRoute("GET", "/namespaces/team/livysessions/nb/sessions/0", { aggregated: true })).toBeNull();
    expect(
      parseRoute("GET", "/apis/livy.dev/gateway/namespaces/team/livysessions/nb/proxy/sessions/0"),
    ).toBeNull();
  });

  it("answers its refusals as a Kubernetes Status that Livy clients read too", () => {
    expect(statusBody(403, "no")).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "no",
      reason: "Forbidden",
      code: 403,
      msg: "no",
    });
    expect(discoveryDocument()).toEqual({
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: "livy.dev/gateway",
      resources: [],
    });
  });

  it("makes a serving certificate Node and OpenSSL accept", () => {
    const s = selfSignedCertificate(["gw.team.svc", "localhost"]);
    const x = new X509Certificate(s.certPem);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.ca).toBe(true);
    expect(x.checkHost("gw.team.svc")).toBe("gw.team.svc");
    expect(x.checkHost("other.team.svc")).toBeUndefined();
    expect(x.subjectAltName).toBe("DNS:gw.team.svc, DNS:localhost");
    expect(Date.parse(x.validTo) - Date.now()).toBeGreaterThan(3000 * 86_400_000);
    expect(createPublicKey(createPrivateKey(s.keyPem)).export({ type: "spki", format: "pem" })).toBe(
      x.publicKey.export({ type: "spki", format: "pem" }),
    );
    expect(() => selfSignedCertificate([])).toThrow();
  });
});
