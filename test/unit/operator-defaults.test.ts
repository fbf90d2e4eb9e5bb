import { describe, expect, it } from "vitest";
import {
  RESERVED_MOUNT_PATHS,
  RESERVED_VOLUMES,
  SESSION_CONF_DEFAULTS,
  type ServerSpec,
} from "../../src/api/index.ts";
import { ConfigError, loadConfig } from "../../src/operator/config.ts";
import {
  parseServerDefaults,
  parseSessionConfDefaults,
  type ServerDefaults,
  withBuiltInSessionConf,
  withServerDefaults,
  withSessionDefaults,
} from "../../src/operator/defaults.ts";
import { desiredDeployment, hashOf, type OwnerRef } from "../../src/operator/objects.ts";
import { ok, resource, SERVER_URL, SETTINGS, step, world } from "./operator-world.ts";

const owner: OwnerRef = {
  apiVersion: "livy.dev/v1alpha1",
  kind: "LivySession",
  name: "ws",
  namespace: "data",
  uid: "u-1",
};
const objectDefaults = { image: "livy:default", imagePullPolicy: "IfNotPresent" as const, resources: {} };

const DEFAULTS: ServerDefaults = {
  env: [
    { name: "HTTPS_PROXY", value: "http://proxy:3128" },
    { name: "LOG_LEVEL", value: "info" },
  ],
  envFrom: [{ configMapRef: { name: "site-env" } }],
  imagePullSecrets: [{ name: "regcred" }],
  volumes: [
    { name: "ca", configMap: { name: "corp-ca" } },
    { name: "data", emptyDir: {} },
  ],
  volumeMounts: [
    { name: "ca", mountPath: "/etc/corp-ca", readOnly: true },
    { name: "data", mountPath: "/data" },
  ],
  affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] } },
  priorityClassName: "interactive",
  nodeSelector: { pool: "spark", "kubernetes.io/os": "linux" },
  tolerations: [{ key: "dedicated", operator: "Equal", value: "spark", effect: "NoSchedule" }],
  podLabels: { team: "platform", cost: "shared" },
  podAnnotations: { "example.com/owner": "platform" },
  livyConf: { "livy.server.session.state-retain.sec": "600s" },
};

describe("operator-wide defaults under a LivySession's spec.server (defaults.ts)", () => {
  it("without defaults the spec is untouched; without a spec.server the defaults are it", () => {
    const own: ServerSpec = { priorityClassName: "high" };
    expect(withServerDefaults(undefined, own)).toBe(own);
    expect(withServerDefaults({}, own)).toBe(own);
    expect(withServerDefaults(DEFAULTS, undefined)).toEqual(DEFAULTS);
  });

  it("the LivySession wins: scalars and affinity whole, maps per key, keyed lists per key, envFrom and tolerations appended", () => {
    const own: ServerSpec = {
      env: [
        { name: "LOG_LEVEL", value: "debug" },
        { name: "TOKEN", valueFrom: { secretKeyRef: { name: "t", key: "token" } } },
      ],
      envFrom: [{ secretRef: { name: "mine" } }],
      imagePullSecrets: [{ name: "mine" }],
      volumes: [{ name: "data", persistentVolumeClaim: { claimName: "big" } }],
      volumeMounts: [{ name: "data", mountPath: "/data", readOnly: true }],
      affinity: { podAntiAffinity: {} },
      priorityClassName: "batch",
      nodeSelector: { pool: "gpu" },
      tolerations: [{ key: "gpu", operator: "Exists" }],
      podLabels: { cost: "team-a" },
      podAnnotations: { "example.com/note": "x" },
      livyConf: { "livy.server.session.state-retain.sec": "60s" },
      image: "mine:1",
    };
    expect(withServerDefaults(DEFAULTS, own)).toEqual({
      image: "mine:1",
      env: [
        { name: "HTTPS_PROXY", value: "http://proxy:3128" },
        { name: "LOG_LEVEL", value: "debug" },
        { name: "TOKEN", valueFrom: { secretKeyRef: { name: "t", key: "token" } } },
      ],
      envFrom: [{ configMapRef: { name: "site-env" } }, { secretRef: { name: "mine" } }],
      imagePullSecrets: [{ name: "regcred" }, { name: "mine" }],
      volumes: [
        { name: "ca", configMap: { name: "corp-ca" } },
        { name: "data", persistentVolumeClaim: { claimName: "big" } },
      ],
      volumeMounts: [
        { name: "ca", mountPath: "/etc/corp-ca", readOnly: true },
        { name: "data", mountPath: "/data", readOnly: true },
      ],
      affinity: { podAntiAffinity: {} },
      priorityClassName: "batch",
      nodeSelector: { pool: "gpu", "kubernetes.io/os": "linux" },
      tolerations: [
        { key: "dedicated", operator: "Equal", value: "spark", effect: "NoSchedule" },
        { key: "gpu", operator: "Exists" },
      ],
      podLabels: { team: "platform", cost: "team-a" },
      podAnnotations: { "example.com/owner": "platform", "example.com/note": "x" },
      livyConf: { "livy.server.session.state-retain.sec": "60s" },
    });
  });

  it("a field only the defaults set is the default's; unset on both stays unset (the Deployment's hash is stable)", () => {
    const merged = withServerDefaults({ priorityClassName: "interactive" }, { podLabels: { a: "b" } });
    expect(merged).toEqual({ priorityClassName: "interactive", podLabels: { a: "b" } });
    expect(Object.keys(merged ?? {}).sort()).toEqual(["podLabels", "priorityClassName"]);
  });

  it("session conf: the defaults under spec.session.conf, its own keys winning, other fields kept", () => {
    const conf = { "spark.sql.shuffle.partitions": "16", "spark.ui.enabled": "false" };
    expect(withSessionDefaults(conf, undefined)).toEqual({ conf });
    expect(
      withSessionDefaults(conf, { driverMemory: "2g", conf: { "spark.sql.shuffle.partitions": "4" } }),
    ).toEqual({
      driverMemory: "2g",
      conf: { "spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false" },
    });
    const own = { driverMemory: "1g" };
    expect(withSessionDefaults(undefined, own)).toBe(own);
    expect(withSessionDefaults({}, own)).toBe(own);
  });

  it("built-in session conf: under everything else, per key", () => {
    expect(SESSION_CONF_DEFAULTS).toEqual({ "spark.sql.codegen.cache.maxEntries": "1000" });
    const body: { kind: string; conf?: Record<string, string> } = { kind: "pyspark" };
    expect(withBuiltInSessionConf(body)).toEqual({
      kind: "pyspark",
      conf: { "spark.sql.codegen.cache.maxEntries": "1000" },
    });
    expect(
      withBuiltInSessionConf({
        driverMemory: "2g",
        conf: { "spark.sql.codegen.cache.maxEntries": "100", "spark.ui.enabled": "false" },
      }),
    ).toEqual({
      driverMemory: "2g",
      conf: { "spark.sql.codegen.cache.maxEntries": "100", "spark.ui.enabled": "false" },
    });
  });

  it("defaults are checked by spec.server's own schema, with its messages and the field named", () => {
    expect(parseServerDefaults(DEFAULTS)).toEqual({ ok: true, value: DEFAULTS });
    const bad = (v: unknown) => {
      const r = parseServerDefaults(v);
      return r.ok ? "accepted" : r.message;
    };
    expect(bad({ image: "x" })).toMatch(/^image: not an operator-wide default here .*--default-image/);
    expect(bad([])).toBe("must be a JSON object of spec.server fields");
    expect(bad({ volumes: [{ name: "conf", emptyDir: {} }] })).toBe(
      "volumes[0].name: conf, logs, tmp, work are the operator's volumes",
    );
    expect(
      bad({ env: [{ name: "A", value: "1", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } }] }),
    ).toBe("env[0].valueFrom: set value or valueFrom, not both");
    expect(bad({ volumeMounts: [{ name: "x", mountPath: "/x" }] })).toBe(
      "volumeMounts: each volumeMount must name a volume of spec.server.volumes",
    );
    expect(parseSessionConfDefaults({ "spark.a": "1" })).toEqual({ ok: true, value: { "spark.a": "1" } });
    const conf = parseSessionConfDefaults({ "bad key": "1" });
    expect(conf.ok ? "accepted" : conf.message).toContain("keys must be non-empty");
  });

  it("loadConfig reads --default-server / LIVY_OPERATOR_DEFAULT_SERVER and ..._DEFAULT_SESSION_CONF as JSON", () => {
    const cfg = loadConfig([], {
      LIVY_OPERATOR_DEFAULT_SERVER: JSON.stringify({ imagePullSecrets: [{ name: "regcred" }] }),
      LIVY_OPERATOR_DEFAULT_SESSION_CONF: JSON.stringify({ "spark.ui.enabled": "false" }),
    });
    expect(cfg.defaultServer).toEqual({ imagePullSecrets: [{ name: "regcred" }] });
    expect(cfg.defaultSessionConf).toEqual({ "spark.ui.enabled": "false" });
    expect(loadConfig([], {}).defaultServer).toBeUndefined();
    const err = (() => {
      try {
        loadConfig(["--default-server", '{"priorityClassName":"Not Valid"}'], {});
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(String(err)).toContain("--default-server / LIVY_OPERATOR_DEFAULT_SERVER: priorityClassName:");
  });
});

describe("the Livy pod's spec from spec.server (objects.ts)", () => {
  it("imagePullSecrets, env with valueFrom, envFrom, volumes and mounts after the operator's, affinity, priorityClassName", () => {
    const server: ServerSpec = {
      imagePullSecrets: [{ name: "regcred" }],
      env: [{ name: "TOKEN", valueFrom: { secretKeyRef: { name: "t", key: "token" } } }],
      envFrom: [{ configMapRef: { name: "site-env" }, prefix: "SITE_" }],
      volumes: [{ name: "data", persistentVolumeClaim: { claimName: "big" } }],
      volumeMounts: [{ name: "data", mountPath: "/data" }],
      affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [] } },
      priorityClassName: "interactive",
    };
    const pod = desiredDeployment(owner, server, objectDefaults, "h").spec.template.spec;
    const c = pod.containers[0];
    expect(pod.imagePullSecrets).toEqual([{ name: "regcred" }]);
    expect(pod.priorityClassName).toBe("interactive");
    expect(pod.affinity).toEqual(server.affinity);
    expect(c?.env.at(-1)).toEqual(server.env?.[0]);
    expect(c?.envFrom).toEqual(server.envFrom);
    expect(pod.volumes.map((v) => v.name)).toEqual([...RESERVED_VOLUMES, "data"]);
    expect(c?.volumeMounts.map((m) => m.mountPath)).toEqual([...RESERVED_MOUNT_PATHS, "/data"]);
    // unset: the keys are absent, not empty
    const plain = desiredDeployment(owner, undefined, objectDefaults, "h").spec.template.spec;
    for (const k of ["imagePullSecrets", "priorityClassName", "affinity"])
      expect(plain).not.toHaveProperty(k);
    expect(plain.containers[0]).not.toHaveProperty("envFrom");
  });

  it("the names and paths admission reserves are exactly the operator's own volumes and mounts", () => {
    const pod = desiredDeployment(owner, undefined, objectDefaults, "h").spec.template.spec;
    expect(pod.volumes.map((v) => v.name)).toEqual([...RESERVED_VOLUMES]);
    expect(pod.containers[0]?.volumeMounts.map((m) => m.mountPath)).toEqual([...RESERVED_MOUNT_PATHS]);
  });
});

describe("decide() with operator-wide defaults", () => {
  const settings = {
    ...SETTINGS,
    defaultServer: { priorityClassName: "interactive", podLabels: { team: "platform" } },
    defaultSessionConf: { "spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "16" },
  };

  it("deploys the Livy pod with the defaults under the spec, and opens the session with the default conf under its own", () => {
    const ls = resource({
      server: { podLabels: { team: "data" } },
      session: { conf: { "spark.sql.shuffle.partitions": "4" } },
    });
    const first = step(world(ls, { settings }));
    const deployment = first.plan.apply?.find((a) => a.kind === "deployment")?.object as ReturnType<
      typeof desiredDeployment
    >;
    expect(deployment.spec.template.spec.priorityClassName).toBe("interactive");
    expect(deployment.spec.template.metadata.labels.team).toBe("data");

    const { plan } = step(world(ls, { server: "available", settings }), { session: ok(null) });
    expect(plan.createLivySession?.url).toBe(SERVER_URL);
    expect(plan.createLivySession?.body.conf).toEqual({
      "spark.sql.codegen.cache.maxEntries": "1000",
      "spark.ui.enabled": "false",
      "spark.sql.shuffle.partitions": "4",
    });
    // an operator default or the LivySession's own conf replaces a built-in one
    const own = resource({ session: { conf: { "spark.sql.codegen.cache.maxEntries": "50" } } });
    const p2 = step(world(own, { server: "available", settings }), { session: ok(null) }).plan;
    expect(p2.createLivySession?.body.conf?.["spark.sql.codegen.cache.maxEntries"]).toBe("50");
    const byOperator = { ...settings, defaultSessionConf: { "spark.sql.codegen.cache.maxEntries": "2000" } };
    const p3 = step(world(ls, { server: "available", settings: byOperator }), { session: ok(null) }).plan;
    expect(p3.createLivySession?.body.conf?.["spark.sql.codegen.cache.maxEntries"]).toBe("2000");
  });

  it("the built-in session conf is not in the digest the Livy session's name carries: an upgrade keeps sessions", () => {
    const ls = resource({ session: { driverMemory: "1g" } });
    const { plan } = step(world(ls, { server: "available" }), { session: ok(null) });
    const body = plan.createLivySession?.body;
    expect(body?.conf).toEqual(SESSION_CONF_DEFAULTS);
    // the digest is of the body without them: the same as before they existed
    const digest = body?.name?.split(".").pop();
    expect(digest).toBe(hashOf({ driverMemory: "1g", kind: "pyspark" }).slice(0, 8));
  });
});
