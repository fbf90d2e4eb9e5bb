import fc from "fast-check";
import { API_VERSION, KIND, MAX_NAME_LENGTH } from "../../src/api/livysession.ts";

/**
 * Random LivySession manifests for the admission property test. Every field has an "ok" side (values meant
 * to be valid, including the limits themselves) and a "bad" side (near misses just past a limit, wrong
 * types, garbage). A case draws with a badness level: 0 draws only ok values, so most such cases are
 * admitted; higher levels mix in near misses, so most are refused, for a different reason each time.
 */
type Arb = fc.Arbitrary<unknown>;
type Level = 0 | 1 | 2;

/** An ok value, or with weight `bad` (out of 12 + bad) a bad one. */
function mix(ok: Arb, badArb: Arb, bad: Level): Arb {
  return bad === 0 ? ok : fc.oneof({ arbitrary: ok, weight: 12 }, { arbitrary: badArb, weight: bad });
}

/** Object fields, each maybe absent; now and then null (the server drops it) or an unknown field (pruned). */
function fields(shape: Record<string, Arb>, bad: Level): fc.Arbitrary<Record<string, unknown>> {
  const withNulls: Record<string, Arb> = {};
  for (const [k, a] of Object.entries(shape)) {
    withNulls[k] = fc.oneof(
      { arbitrary: a, weight: bad === 0 ? 30 : 15 },
      { arbitrary: fc.constant(null), weight: 1 },
    );
  }
  const rec = fc.record(withNulls, { requiredKeys: [] });
  return fc
    .tuple(rec, fc.option(fc.constantFrom("surprise", "Kind", "idle_timeout"), { freq: 10 }))
    .map(([r, extra]) => (extra ? { ...r, [extra]: 1 } : r));
}

const garbage: Arb = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.integer({ min: -3, max: 3 }),
  fc.boolean(),
  fc.constant([]),
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -10, max: 10 }),
);

// ------------------------------------------------------------------ durations

const component = (maxWhole: number, units: string[]) =>
  fc
    .tuple(
      fc.integer({ min: 0, max: maxWhole }),
      fc.option(fc.stringMatching(/^[0-9]{1,3}$/), { freq: 4 }),
      fc.constantFrom(...units),
    )
    .map(([w, f, u]) => `${w}${f === null ? "" : `.${f}`}${u}`);

const components = (maxWhole: number, units: string[], maxLength: number) =>
  fc.array(component(maxWhole, units), { minLength: 1, maxLength }).map((cs) => cs.join(""));

const malformedDuration = fc.constantFrom(
  "",
  "15",
  "00",
  "-1m",
  "+1m",
  "1d",
  "15 m",
  ".5h",
  "1.h",
  "1.0001s",
  "1234567h",
  "1us",
  "1H",
  "1h1",
);

const idleTimeout = (bad: Level): Arb =>
  mix(
    fc.oneof(
      fc.constantFrom("0", "0s", "90s", "15m", "1h30m", "1.5h", "167h59m60s", "168h", "1ms"),
      components(167, ["h"], 1),
      components(59, ["m", "s", "ms"], 3),
    ),
    fc.oneof(
      malformedDuration,
      fc.constantFrom("168h0.001s", "169h", "100h100h", "999999h999999h999999h"),
      components(999_999, ["h", "m", "s", "ms"], 3),
      garbage,
    ),
    bad,
  );

const startupTimeout = (bad: Level): Arb =>
  mix(
    fc.oneof(
      fc.constantFrom("1ms", "90s", "5m", "59m59.999s", "60m", "1h", "0.5h", "3600s"),
      fc.tuple(fc.integer({ min: 1, max: 59 }), fc.constantFrom("m", "s", "ms")).map(([n, u]) => `${n}${u}`),
    ),
    fc.oneof(
      malformedDuration,
      fc.constantFrom("0", "0s", "0ms", "1h0m0.001s", "61m", "3601s", "2h"),
      components(999_999, ["h", "m", "s", "ms"], 3),
      garbage,
    ),
    bad,
  );

// ------------------------------------------------------------------ names and keys

const dnsLabel = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,12}[a-z0-9])?$/);
const subdomain = fc.array(dnsLabel, { minLength: 1, maxLength: 3 }).map((ls) => ls.join("."));
const labelValue = fc.stringMatching(/^(([A-Za-z0-9][-A-Za-z0-9_.]{0,20})?[A-Za-z0-9])?$/);
const keyName = fc.stringMatching(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?$/);

const qualifiedName = (bad: Level, reserved = false): Arb =>
  mix(
    fc.oneof(
      { arbitrary: keyName, weight: 4 },
      { arbitrary: fc.tuple(subdomain, keyName).map(([p, n]) => `${p}/${n}`), weight: 4 },
      { arbitrary: fc.constantFrom(`${"a".repeat(253)}/x`, "x".repeat(63), "kubernetes.io/os"), weight: 1 },
    ),
    fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.constantFrom(
        "",
        "a b",
        "-a",
        "a-",
        "a/",
        "/a",
        "A.b/c",
        `${"a".repeat(254)}/x`,
        "x".repeat(64),
        "ü",
      ),
      reserved ? fc.constantFrom("app.kubernetes.io/name", "livy.dev/session") : fc.constant("a//b"),
    ),
    bad,
  );

/** A map: a few entries, or (bad side) more than any maxProperties here allows. */
const dict = (key: Arb, value: Arb, bad: Level): Arb => {
  const small = fc.dictionary(key as fc.Arbitrary<string>, value, { maxKeys: 3 });
  if (bad === 0) return small;
  return fc.oneof(
    { arbitrary: small, weight: 15 },
    { arbitrary: fc.dictionary(key as fc.Arbitrary<string>, value, { minKeys: 17, maxKeys: 40 }), weight: 1 },
    { arbitrary: garbage, weight: 1 },
  );
};

const text = (max: number, bad: Level): Arb =>
  mix(
    fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.string({ unit: "grapheme", maxLength: 12 }),
      fc.constantFrom("", "a\nb", "x".repeat(max), "😀".repeat(max)),
    ),
    fc.constantFrom("x".repeat(max + 1), "😀".repeat(max + 1), 1, true),
    bad,
  );

const noWhitespace = (max: number, bad: Level): Arb =>
  mix(
    fc.oneof(
      fc.stringMatching(/^[A-Za-z0-9:/._#-]{1,20}$/),
      fc.constantFrom("a".repeat(max), "😀".repeat(max), "hdfs:///a.jar", "ünïcode"),
    ),
    fc.constantFrom("", "a b", "a\tb", "a\nb", "a\u000bb", "a".repeat(max + 1), "😀".repeat(max + 1)),
    bad,
  );

// ------------------------------------------------------------------ server

const quantity = (bad: Level): Arb =>
  mix(
    fc.oneof(
      fc.integer({ min: 0, max: 1_000_000 }),
      fc.constantFrom("500m", "2Gi", "1.5", "1e3", "+1", "1.", ".5", "1Ki", "64", "0"),
    ),
    fc.oneof(
      fc.constantFrom("-1", "2 GB", "1e", "", "1KB", "Gi", "1.5.5"),
      fc.integer({ min: -5, max: -1 }),
      fc.constant(0.5),
    ),
    bad,
  );

const envName = (bad: Level): Arb =>
  mix(
    fc.stringMatching(/^[-._a-zA-Z][-._a-zA-Z0-9]{0,8}$/),
    fc.constantFrom("", "1A", "A=B", "A B", "Ä"),
    bad,
  );

const env = (bad: Level): Arb =>
  mix(
    fc
      .uniqueArray(fields({ name: envName(0), value: text(32, 0) }, 0), {
        maxLength: 4,
        selector: (e) => e.name,
      })
      .map((es) => es.filter((e) => typeof e.name === "string")),
    fc.oneof(
      fc.array(fields({ name: envName(bad), value: text(32, bad) }, bad), { maxLength: 3 }),
      fc.constantFrom([{ name: "A" }, { name: "A" }], [{ value: "x" }], "A=1"),
    ),
    bad,
  );

/** Consistent tolerations (the cross-field rules hold) on the ok side; anything on the bad side. */
const toleration = (bad: Level): Arb =>
  mix(
    fc
      .oneof(
        fields(
          {
            operator: fc.constant("Exists"),
            key: qualifiedName(0),
            effect: fc.constantFrom("NoSchedule", "PreferNoSchedule"),
          },
          0,
        ).map((t) => ({ ...t, operator: "Exists" })),
        fc.record({
          key: qualifiedName(0),
          operator: fc.constantFrom("Equal", undefined),
          value: labelValue,
          effect: fc.constantFrom("NoSchedule", "NoExecute", undefined),
        }),
        fc.record({
          key: qualifiedName(0),
          effect: fc.constant("NoExecute"),
          tolerationSeconds: fc.nat(3600),
        }),
      )
      .map((t) => JSON.parse(JSON.stringify(t)) as unknown),
    fields(
      {
        key: qualifiedName(bad),
        operator: fc.constantFrom("Exists", "Equal", "In", ""),
        value: fc.oneof(labelValue, fc.constantFrom("a b", "x".repeat(64))),
        effect: fc.constantFrom("NoSchedule", "PreferNoSchedule", "NoExecute", "", "Never"),
        tolerationSeconds: fc.constantFrom(0, 60, -1, 1.5, "60"),
      },
      bad,
    ),
    bad,
  );

const server = (bad: Level) =>
  fields(
    {
      image: noWhitespace(1024, bad),
      imagePullPolicy: mix(
        fc.constantFrom("Always", "IfNotPresent", "Never"),
        fc.constantFrom("always", ""),
        bad,
      ),
      resources: fields(
        {
          requests: dict(qualifiedName(bad), quantity(bad), bad),
          limits: dict(qualifiedName(bad), quantity(bad), bad),
        },
        bad,
      ),
      env: env(bad),
      livyConf: dict(
        mix(
          fc.stringMatching(/^livy\.[a-z]{1,6}(\.[a-z]{1,6}){0,2}$/),
          fc.constantFrom("spark.x", "livy.", "livy.server.port", "livy.server.host", "livy. x", "LIVY.x"),
          bad,
        ),
        mix(
          fc.string({ maxLength: 10 }).filter((s) => !/[\r\n]/.test(s)),
          fc.constantFrom("a\nb", "a\rb", "x".repeat(4097)),
          bad,
        ),
        bad,
      ),
      serviceAccountName: mix(subdomain, fc.constantFrom("Spark", "a_b", "", "-a"), bad),
      nodeSelector: dict(
        qualifiedName(bad),
        mix(labelValue, fc.constantFrom("a b", "x".repeat(64), "-a"), bad),
        bad,
      ),
      tolerations: fc.array(toleration(bad), { maxLength: 3 }),
      podLabels: dict(qualifiedName(bad, true), labelValue, bad),
      podAnnotations: dict(qualifiedName(bad), text(16, bad), bad),
    },
    bad,
  );

// ------------------------------------------------------------------ session

const uriList = (bad: Level): Arb =>
  mix(fc.array(noWhitespace(4096, 0), { maxLength: 3 }), fc.constantFrom("a.jar", [null], [1], [""]), bad);

const session = (bad: Level) =>
  fields(
    {
      conf: dict(
        mix(
          fc.stringMatching(/^spark\.[a-zA-Z.]{1,12}$/),
          fc.constantFrom("", "a b", "a\tb", "x".repeat(257)),
          bad,
        ),
        text(8, bad),
        bad,
      ),
      driverMemory: mix(
        fc.stringMatching(/^[0-9]{1,5}([kmgtpKMGTP][bB]?|[bB])?$/),
        fc.constantFrom("", "1 g", "g", "1x", "-1g", "1234567890m"),
        bad,
      ),
      executorMemory: mix(fc.constantFrom("512m", "1g", "2048", "4gb"), fc.constantFrom("1.5g", "1gib"), bad),
      driverCores: mix(fc.integer({ min: 1, max: 512 }), fc.constantFrom(0, 513, 1.5, "2"), bad),
      executorCores: mix(fc.integer({ min: 1, max: 8 }), fc.constantFrom(-1, 0), bad),
      numExecutors: mix(fc.integer({ min: 1, max: 10_000 }), fc.constantFrom(0, 10_001), bad),
      jars: uriList(bad),
      pyFiles: uriList(bad),
      files: uriList(bad),
      archives: uriList(bad),
      queue: noWhitespace(253, bad),
      proxyUser: noWhitespace(253, bad),
      name: noWhitespace(128, bad),
      heartbeatTimeoutInSecond: mix(fc.integer({ min: 0, max: 604_800 }), fc.constantFrom(-1, 604_801), bad),
    },
    bad,
  );

// ------------------------------------------------------------------ spark

const dynamicAllocation = (bad: Level) =>
  fields(
    {
      minExecutors: mix(fc.integer({ min: 0, max: 1000 }), fc.constantFrom(-1, 1001, 0.5), bad),
      maxExecutors: mix(fc.integer({ min: 1, max: 1000 }), fc.constantFrom(0, 1001, "4"), bad),
      initialExecutors: mix(fc.integer({ min: 0, max: 1000 }), fc.constantFrom(-1, 1001), bad),
      executorIdleTimeout: mix(
        fc.constantFrom("60s", "2m", "1h30m", "24h", "1ms"),
        fc.constantFrom("0", "24h0.001s", "25h", "1d", ""),
        bad,
      ),
    },
    bad,
  ).map((d) => {
    if (bad !== 0) return d;
    // the ok side keeps the cross-field rules: maxExecutors required, min <= initial <= max
    const max = typeof d.maxExecutors === "number" ? d.maxExecutors : 4;
    const min = typeof d.minExecutors === "number" ? Math.min(d.minExecutors, max) : undefined;
    const out: Record<string, unknown> = { ...d, maxExecutors: max };
    if (min !== undefined) out.minExecutors = min;
    else delete out.minExecutors;
    if (typeof d.initialExecutors === "number")
      out.initialExecutors = Math.max(min ?? 0, Math.min(d.initialExecutors, max));
    else delete out.initialExecutors;
    return out;
  });

const sparkMemory = (bad: Level): Arb =>
  mix(fc.constantFrom("512m", "1g", "2048", "4gb", "384M"), fc.constantFrom("1Gi", "", "1.5g", "-1g"), bad);

const executors = (bad: Level) =>
  fields(
    {
      instances: mix(fc.integer({ min: 1, max: 1000 }), fc.constantFrom(0, 1001, 1.5, "2"), bad),
      dynamicAllocation: mix(dynamicAllocation(bad), garbage, bad),
      cores: mix(fc.integer({ min: 1, max: 64 }), fc.constantFrom(0, 65), bad),
      cpuRequest: quantity(bad),
      cpuLimit: quantity(bad),
      memory: sparkMemory(bad),
      memoryOverhead: sparkMemory(bad),
      image: noWhitespace(1024, bad),
      imagePullPolicy: mix(fc.constantFrom("Always", "IfNotPresent", "Never"), fc.constantFrom("never"), bad),
      nodeSelector: dict(qualifiedName(bad), mix(labelValue, fc.constantFrom("a b"), bad), bad),
      tolerations: fc.array(toleration(bad), { maxLength: 2 }),
    },
    bad,
  ).map((e) => {
    // the ok side: a fixed count or dynamic allocation, not both
    if (bad === 0 && e.instances !== undefined && e.instances !== null) {
      const { dynamicAllocation: _, ...rest } = e;
      return rest;
    }
    return e;
  });

const spark = (bad: Level) =>
  fields(
    {
      mode: mix(fc.constantFrom("local", "kubernetes"), fc.constantFrom("yarn", "Kubernetes", ""), bad),
      executors: mix(executors(bad), garbage, bad),
    },
    bad,
  ).map((s) =>
    // the ok side: executors come with the mode they apply in
    bad === 0 && s.executors !== undefined && s.executors !== null ? { ...s, mode: "kubernetes" } : s,
  );

// ------------------------------------------------------------------ the resource

const spec = (bad: Level) =>
  fields(
    {
      kind: mix(
        fc.constantFrom("spark", "pyspark", "sparkr", "sql"),
        fc.constantFrom("scala", "PySpark", "", 1),
        bad,
      ),
      suspend: mix(fc.boolean(), fc.constantFrom("true", 0), bad),
      idleTimeout: idleTimeout(bad),
      startupTimeout: startupTimeout(bad),
      failurePolicy: mix(fc.constantFrom("FailFast", "Recover"), fc.constantFrom("recover", "Retry"), bad),
      maxRestarts: mix(fc.integer({ min: 0, max: 1000 }), fc.constantFrom(-1, 1001, 1.5, "3"), bad),
      server: mix(server(bad), garbage, bad),
      session: mix(session(bad), garbage, bad),
      spark: mix(spark(bad), garbage, bad),
      auth: fields(
        {
          type: mix(fc.constantFrom("Basic", "Bearer"), fc.constantFrom("Digest", "basic"), bad),
          secretName: mix(subdomain, fc.constantFrom("", "Secret", "a_b"), bad),
        },
        bad,
      ).map((a) => (bad === 0 ? { ...a, type: a.type ?? "Basic", secretName: a.secretName ?? "creds" } : a)),
    },
    bad,
  ).map((s) => {
    if (bad !== 0) return s;
    // On the ok side, maxRestarts comes with the policy it needs (the cross-field rule), and in Spark's
    // kubernetes mode the executors are sized in spec.spark alone and the master is the operator's.
    let out = s.maxRestarts !== undefined && s.maxRestarts !== null ? { ...s, failurePolicy: "Recover" } : s;
    const sp = out.spark as { mode?: unknown } | null | undefined;
    if (sp && typeof sp === "object" && sp.mode === "kubernetes") {
      const ses = out.session as Record<string, unknown> | null | undefined;
      if (ses && typeof ses === "object") {
        const { numExecutors: _n, executorCores: _c, executorMemory: _m, ...rest } = ses;
        out = { ...out, session: rest };
      }
      const srv = out.server as Record<string, unknown> | null | undefined;
      const conf = srv && typeof srv === "object" ? (srv.livyConf as Record<string, unknown> | null) : null;
      if (srv && conf && typeof conf === "object") {
        const { "livy.spark.master": _a, "livy.spark.deploy-mode": _b, ...keep } = conf;
        out = { ...out, server: { ...srv, livyConf: keep } };
      }
    }
    return out;
  });

const name = (bad: Level) =>
  mix(
    fc.oneof(
      fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/),
      fc.constant("x".repeat(MAX_NAME_LENGTH)),
    ),
    fc.constantFrom(
      "x".repeat(MAX_NAME_LENGTH + 1),
      "x".repeat(63),
      "with.dot",
      "a.b.c",
      "-x",
      "x-",
      "Upper",
    ),
    bad,
  );

export const livySessionArbitrary: fc.Arbitrary<Record<string, unknown>> = fc
  .constantFrom<Level>(0, 0, 1, 2)
  .chain((bad) => fc.record({ name: name(bad), spec: bad === 2 ? mix(spec(bad), garbage, 1) : spec(bad) }))
  .map(({ name, spec }) => ({ apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec }));
