import { describe, expect, it } from "vitest";
import {
  API_VERSION,
  KIND,
  labelsFor,
  MAX_NAME_LENGTH,
  parseLivySession,
  pruneNulls,
  serverName,
} from "../../src/api/livysession.ts";

function session(spec: unknown, name = "worksheet-42", extra: Record<string, unknown> = {}) {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, namespace: "data-prep" },
    ...(spec === undefined ? {} : { spec }),
    ...extra,
  };
}

/** The formatted paths of all issues, or [] when the object parses. */
function issuePaths(obj: unknown): string[] {
  const r = parseLivySession(obj);
  if (r.success) return [];
  return r.message.split("; ").map((l) => l.slice(0, l.indexOf(": ")));
}

const DEFAULTS = {
  kind: "pyspark",
  suspend: false,
  idleTimeout: "15m",
  startupTimeout: "5m",
  failurePolicy: "FailFast",
};

describe("LivySession spec: defaults", () => {
  it("fills every default when spec is missing, empty or null", () => {
    for (const spec of [undefined, {}, null]) {
      const r = parseLivySession(session(spec));
      expect(r.success).toBe(true);
      if (r.success) expect(r.data.spec).toEqual(DEFAULTS);
    }
  });

  it("treats null fields as absent, as the API server does (then defaults apply)", () => {
    const r = parseLivySession(session({ suspend: null, idleTimeout: null, server: { image: null } }));
    expect(r.success).toBe(true);
    if (r.success) expect(r.data.spec).toEqual({ ...DEFAULTS, server: {} });
  });

  it("keeps what is set and drops unknown fields, as the API server prunes them", () => {
    const r = parseLivySession(
      session({ kind: "sql", idleTimeout: "0", surprise: 1, session: { numExecutors: 2, extra: "x" } }),
    );
    expect(r.success).toBe(true);
    if (r.success) {
      expect(r.data.spec).toEqual({
        ...DEFAULTS,
        kind: "sql",
        idleTimeout: "0",
        session: { numExecutors: 2 },
      });
    }
  });

  it("leaves metadata alone", () => {
    const meta = { name: "a", namespace: "b", labels: { x: "y" }, uid: "u", resourceVersion: "1" };
    const r = parseLivySession({ apiVersion: API_VERSION, kind: KIND, metadata: meta, spec: {} });
    expect(r.success && r.data.metadata).toEqual(meta);
  });

  it("does not drop nulls inside lists (the API server refuses them too)", () => {
    expect(issuePaths(session({ session: { jars: [null] } }))).toEqual(["spec.session.jars[0]"]);
  });
});

type Case = [label: string, spec: unknown, path: string | null];

const VALID: Case[] = [
  ["every session kind", { kind: "sparkr" }, null],
  ["idleTimeout 0 (never)", { idleTimeout: "0" }, null],
  ["idleTimeout at its maximum", { idleTimeout: "168h" }, null],
  ["idleTimeout spelled in components", { idleTimeout: "167h59m60s" }, null],
  ["fractional duration", { startupTimeout: "0.5h" }, null],
  ["startupTimeout 1ms", { startupTimeout: "1ms" }, null],
  ["startupTimeout at its maximum", { startupTimeout: "60m" }, null],
  ["maxRestarts with Recover", { failurePolicy: "Recover", maxRestarts: 0 }, null],
  [
    "integer and string quantities",
    { server: { resources: { requests: { cpu: 2, memory: "1.5Gi" } } } },
    null,
  ],
  ["extended resource name", { server: { resources: { limits: { "nvidia.com/gpu": 1 } } } }, null],
  ["env without value", { server: { env: [{ name: "A" }, { name: "B", value: "" }] } }, null],
  [
    "livy.conf entries",
    { server: { livyConf: { "livy.rsc.jars": "a,b", "livy.spark.master": "local[*]" } } },
    null,
  ],
  ["empty label value", { server: { nodeSelector: { pool: "" } } }, null],
  ["toleration matching all taints", { server: { tolerations: [{ operator: "Exists" }] } }, null],
  [
    "toleration with seconds",
    { server: { tolerations: [{ key: "k", effect: "NoExecute", tolerationSeconds: 5 }] } },
    null,
  ],
  ["prefixed pod label", { server: { podLabels: { "example.com/team": "a" } } }, null],
  [
    "annotation values are free text",
    { server: { podAnnotations: { note: "any text: even\nnewlines" } } },
    null,
  ],
  [
    "Spark conf with odd values",
    { session: { conf: { "spark.driver.extraJavaOptions": "-Da=b -Dc=d" } } },
    null,
  ],
  ["memory sizes", { session: { driverMemory: "512m", executorMemory: "2GB" } }, null],
  [
    "session name of astral characters (code points, not UTF-16 units)",
    { session: { name: "😀".repeat(128) } },
    null,
  ],
  ["auth", { auth: { type: "Bearer", secretName: "livy-token" } }, null],
];

const INVALID: Case[] = [
  ["unknown kind", { kind: "scala" }, "spec.kind"],
  ["suspend as string", { suspend: "true" }, "spec.suspend"],
  ["malformed duration", { idleTimeout: "15 minutes" }, "spec.idleTimeout"],
  ["negative duration", { idleTimeout: "-1m" }, "spec.idleTimeout"],
  ["idleTimeout above its maximum", { idleTimeout: "168h0.001s" }, "spec.idleTimeout"],
  ["startupTimeout zero", { startupTimeout: "0s" }, "spec.startupTimeout"],
  ["startupTimeout above its maximum", { startupTimeout: "1h0m0.001s" }, "spec.startupTimeout"],
  ["empty duration", { startupTimeout: "" }, "spec.startupTimeout"],
  ["unknown failure policy", { failurePolicy: "Retry" }, "spec.failurePolicy"],
  ["maxRestarts with FailFast", { maxRestarts: 2 }, "spec.maxRestarts"],
  ["maxRestarts fractional", { failurePolicy: "Recover", maxRestarts: 1.5 }, "spec.maxRestarts"],
  ["image with a space", { server: { image: "a b" } }, "spec.server.image"],
  ["unknown pull policy", { server: { imagePullPolicy: "Sometimes" } }, "spec.server.imagePullPolicy"],
  [
    "negative quantity",
    { server: { resources: { requests: { cpu: -1 } } } },
    "spec.server.resources.requests.cpu",
  ],
  [
    "fractional number quantity",
    { server: { resources: { requests: { cpu: 0.5 } } } },
    "spec.server.resources.requests.cpu",
  ],
  [
    "resource name with a space",
    { server: { resources: { limits: { "my gpu": 1 } } } },
    "spec.server.resources.limits",
  ],
  ["duplicate env", { server: { env: [{ name: "A" }, { name: "A", value: "2" }] } }, "spec.server.env[1]"],
  ["env name with '='", { server: { env: [{ name: "A=B" }] } }, "spec.server.env[0].name"],
  ["env without name", { server: { env: [{ value: "x" }] } }, "spec.server.env[0].name"],
  ["livy.conf key without livy.", { server: { livyConf: { "spark.x": "1" } } }, "spec.server.livyConf"],
  [
    "livy.conf reserved key",
    { server: { livyConf: { "livy.server.host": "0.0.0.0" } } },
    "spec.server.livyConf",
  ],
  [
    "livy.conf value with newline",
    { server: { livyConf: { "livy.a": "1\r\nlivy.b=2" } } },
    "spec.server.livyConf.livy.a",
  ],
  [
    "service account with capitals",
    { server: { serviceAccountName: "Spark" } },
    "spec.server.serviceAccountName",
  ],
  ["node selector key with space", { server: { nodeSelector: { "a b": "c" } } }, "spec.server.nodeSelector"],
  [
    "node selector value too long",
    { server: { nodeSelector: { a: "x".repeat(64) } } },
    "spec.server.nodeSelector.a",
  ],
  [
    "pod label reserved",
    { server: { podLabels: { "app.kubernetes.io/instance": "x" } } },
    "spec.server.podLabels",
  ],
  [
    "annotation key prefix over 253",
    { server: { podAnnotations: { [`${"a".repeat(254)}/x`]: "1" } } },
    "spec.server.podAnnotations",
  ],
  [
    "toleration without key and Equal",
    { server: { tolerations: [{ value: "x" }] } },
    "spec.server.tolerations[0].operator",
  ],
  [
    "toleration Exists with value",
    { server: { tolerations: [{ key: "k", operator: "Exists", value: "v" }] } },
    "spec.server.tolerations[0].value",
  ],
  [
    "toleration seconds without NoExecute",
    { server: { tolerations: [{ key: "k", tolerationSeconds: 1 }] } },
    "spec.server.tolerations[0].tolerationSeconds",
  ],
  [
    "too many tolerations",
    { server: { tolerations: Array(33).fill({ operator: "Exists" }) } },
    "spec.server.tolerations",
  ],
  ["Spark conf key with space", { session: { conf: { "a b": "c" } } }, "spec.session.conf"],
  ["Spark conf empty key", { session: { conf: { "": "c" } } }, "spec.session.conf"],
  ["memory without digits", { session: { driverMemory: "g" } }, "spec.session.driverMemory"],
  ["zero executors", { session: { numExecutors: 0 } }, "spec.session.numExecutors"],
  ["cores as string", { session: { executorCores: "2" } }, "spec.session.executorCores"],
  ["jars as string", { session: { jars: "a.jar" } }, "spec.session.jars"],
  ["empty jar", { session: { jars: [""] } }, "spec.session.jars[0]"],
  ["session name too long", { session: { name: "😀".repeat(129) } }, "spec.session.name"],
  ["unknown auth type", { auth: { type: "Digest", secretName: "s" } }, "spec.auth.type"],
  ["auth without secret", { auth: { type: "Basic" } }, "spec.auth.secretName"],
  ["spec not an object", "pyspark", "spec"],
];

describe("LivySession spec: validation", () => {
  it.each(VALID)("accepts %s", (_label, spec) => {
    const r = parseLivySession(session(spec));
    expect(r.success ? "" : r.message).toBe("");
  });

  it.each(INVALID)("refuses %s at %s", (_label, spec, path) => {
    expect(issuePaths(session(spec))).toContain(path);
  });
});

describe("LivySession metadata.name", () => {
  it.each([
    ["a", true],
    ["0-starts-with-digit", true],
    ["x".repeat(MAX_NAME_LENGTH), true],
    ["x".repeat(MAX_NAME_LENGTH + 1), false],
    ["with.dot", false],
    ["Upper", false],
    ["-dash", false],
    ["dash-", false],
    ["", false],
  ])("%j valid: %s", (name, ok) => {
    const paths = issuePaths(session({}, name));
    expect(paths.length === 0).toBe(ok);
    if (!ok) expect(paths).toContain("metadata.name");
  });

  it("keeps livy-<name> within a 63-character DNS label", () => {
    expect(serverName("x".repeat(MAX_NAME_LENGTH))).toHaveLength(63);
  });
});

describe("LivySession root", () => {
  it("refuses another apiVersion or kind", () => {
    expect(issuePaths({ ...session({}), apiVersion: "livy.dev/v1" })).toEqual(["apiVersion"]);
    expect(issuePaths({ ...session({}), kind: "Session" })).toEqual(["kind"]);
  });

  it("parses a status written by the operator", () => {
    const status = {
      observedGeneration: 3,
      phase: "Ready",
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "SessionIdle",
          message: "",
          lastTransitionTime: "2025-01-01T00:00:00.123Z",
          observedGeneration: 3,
        },
      ],
      serverURL: "http://livy-worksheet-42.data-prep.svc:8998",
      sessionURL: "http://livy-worksheet-42.data-prep.svc:8998/sessions/0",
      livySessionId: 0,
      livySessionState: "idle",
      lastActivityTime: "2025-01-01T00:00:00Z",
      restarts: 0,
    };
    const r = parseLivySession(session({}, "worksheet-42", { status }));
    expect(r.success ? r.data.status : r.message).toEqual(status);
  });

  it.each([
    ["duplicate condition type", { conditions: [cond("Ready"), cond("Ready")] }, "status.conditions[1]"],
    [
      "reason not CamelCase",
      { conditions: [{ ...cond("Ready"), reason: "not ok" }] },
      "status.conditions[0].reason",
    ],
    [
      "time not RFC 3339",
      { conditions: [{ ...cond("Ready"), lastTransitionTime: "yesterday" }] },
      "status.conditions[0].lastTransitionTime",
    ],
    ["unknown phase", { phase: "Running" }, "status.phase"],
  ])("refuses a status with %s", (_label, status, path) => {
    expect(issuePaths(session({}, "a", { status }))).toContain(path);
  });

  it("reports every issue with its path", () => {
    const r = parseLivySession(session({ kind: "x", idleTimeout: "y" }));
    expect(r.success).toBe(false);
    if (!r.success) {
      expect(r.message).toMatch(/^spec\.kind: .*; spec\.idleTimeout: /);
      expect(r.error.issues.map((i) => i.path.join("."))).toEqual(["spec.kind", "spec.idleTimeout"]);
    }
  });
});

function cond(type: string) {
  return { type, status: "True", reason: "R", message: "", lastTransitionTime: "2025-01-01T00:00:00Z" };
}

describe("helpers", () => {
  it("labels the owned objects with the selector labels", () => {
    expect(labelsFor("w")).toEqual({
      "app.kubernetes.io/name": "livy",
      "app.kubernetes.io/instance": "w",
      "app.kubernetes.io/managed-by": "livy-operator",
      "livy.dev/session": "w",
    });
  });

  it("prunes nulls in objects and maps, not in lists", () => {
    expect(pruneNulls({ a: null, b: { c: null, d: 1 }, e: [null, { f: null }] })).toEqual({
      b: { d: 1 },
      e: [null, {}],
    });
  });
});
