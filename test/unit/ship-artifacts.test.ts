import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { livySessionSchema, MAX_NAME_LENGTH } from "../../src/api/index.ts";
import { loadConfig } from "../../src/operator/config.ts";
import { desiredDeployment, LIVY_PORT } from "../../src/operator/objects.ts";
import { parseDockerfile, type Stage } from "../integration/dockerfile.ts";
import { REPO_ROOT, versions } from "../testbed/paths.ts";

/**
 * What ships beside the code (chart, examples, Livy image) must agree with the code: the CRD's schema, the
 * operator's defaults and the pod layout the operator builds. No cluster needed.
 */
const read = (...p: string[]) => readFileSync(join(REPO_ROOT, ...p), "utf8");

describe("examples/", () => {
  const files = readdirSync(join(REPO_ROOT, "examples")).filter((f) => f.endsWith(".yaml"));
  const examples = files.map((f) => ({
    file: f,
    obj: parse(read("examples", f)) as Record<string, unknown>,
  }));

  it.each(files)("%s is a valid LivySession by the API's own schema", (file) => {
    const docs = parseAllDocuments(read("examples", file));
    expect(docs).toHaveLength(1);
    const obj = docs[0]?.toJS() as { metadata: { name: string; namespace?: string } };
    const res = livySessionSchema.safeParse(obj);
    expect(res.success, res.success ? "" : JSON.stringify(res.error.issues, null, 2)).toBe(true);
    expect(obj.metadata.name.length).toBeLessThanOrEqual(MAX_NAME_LENGTH);
    expect(obj.metadata.namespace, "examples take the namespace from kubectl -n").toBeUndefined();
  });

  it("covers what a user starts from: minimal pyspark, resources and conf, suspended, Recover, scala", () => {
    const specs = examples.map((e) => livySessionSchema.parse(e.obj).spec);
    expect(specs.some((s) => s.kind === "pyspark" && !s.server && !s.session)).toBe(true);
    expect(specs.some((s) => s.server?.resources && s.session?.conf && s.session.driverMemory)).toBe(true);
    expect(specs.some((s) => s.suspend)).toBe(true);
    expect(specs.some((s) => s.failurePolicy === "Recover" && s.maxRestarts !== undefined)).toBe(true);
    expect(specs.some((s) => s.kind === "spark")).toBe(true);
  });
});

describe("the Helm chart's values", () => {
  const values = parse(read("charts", "livy-operator", "values.yaml")) as Record<string, unknown>;
  const readme = read("charts", "livy-operator", "README.md");
  const valuesSection = readme.slice(readme.indexOf("## Values"), readme.indexOf("## Permissions"));
  const documented = [...valuesSection.matchAll(/^\| `([A-Za-z0-9_.]+)` +\|/gm)].map((m) => m[1] ?? "");
  const leaves: string[] = [];
  const walk = (v: unknown, path: string) => {
    if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length > 0) {
      for (const [k, child] of Object.entries(v)) walk(child, path ? `${path}.${k}` : k);
    } else leaves.push(path);
  };
  walk(values, "");

  it("are all listed in the chart README", () => {
    const missing = leaves.filter((l) => !documented.some((d) => l === d || l.startsWith(`${d}.`)));
    expect(missing).toEqual([]);
  });

  it("are listed in the README only if they exist", () => {
    const unknown = documented.filter((d) => !leaves.some((l) => l === d || l.startsWith(`${d}.`)));
    expect(unknown).toEqual([]);
  });

  it("each has a schema, which rejects unknown keys", () => {
    const schema = JSON.parse(read("charts", "livy-operator", "values.schema.json")) as {
      additionalProperties: boolean;
      properties: Record<string, unknown>;
    };
    expect(schema.additionalProperties).toBe(false);
    for (const k of Object.keys(values)) expect(Object.keys(schema.properties), k).toContain(k);
  });

  it("default to what the operator defaults to", () => {
    const op = loadConfig([], {});
    const livy = values.livyServer as Record<string, unknown>;
    const config = values.config as Record<string, unknown>;
    expect(livy.image).toBe(op.defaultImage);
    expect(livy.imagePullPolicy).toBe(op.defaultImagePullPolicy);
    expect(livy.resources).toEqual(op.defaultResources);
    expect(livy.serverUrlTemplate).toBe(op.serverUrlTemplate);
    expect(config.logLevel).toBe(op.logLevel);
    expect(config.concurrency).toBe(op.concurrency);
    expect(config.sessionPollIntervalMs).toBe(op.sessionPollIntervalMs);
    expect(config.livyRequestTimeoutMs).toBe(op.livyRequestTimeoutMs);
    expect(config.watchStallTimeoutMs).toBe(op.watchStallTimeoutMs);
    expect(op.watchTimeoutSeconds).toBeUndefined(); // the chart's 0 means: not set
    expect((values.networkPolicy as Record<string, unknown>).enabled).toBe(op.networkPolicy);
  });

  it("Chart.yaml: appVersion is the package version, kubeVersion >= 1.29", () => {
    const chart = parse(read("charts", "livy-operator", "Chart.yaml")) as Record<string, string>;
    const pkg = JSON.parse(read("package.json")) as { version: string };
    expect(chart.appVersion).toBe(pkg.version);
    expect(chart.kubeVersion).toBe(">=1.29.0-0");
  });
});

describe("the Livy server image (deploy/livy-image)", () => {
  const df = parseDockerfile(read("deploy", "livy-image", "Dockerfile"));
  const final = df.stages.at(-1) as Stage;
  const v = versions();
  const pod = desiredDeployment(
    { apiVersion: "livy.dev/v1alpha1", kind: "LivySession", name: "x", namespace: "n", uid: "u" },
    undefined,
    { image: "i", imagePullPolicy: "IfNotPresent", resources: {} },
    "h",
  ).spec.template.spec;
  const container = pod.containers[0];

  it("is the image the operator deploys by default, with the test bed's Livy and Spark versions", () => {
    const sparkImage = df.args.SPARK_IMAGE ?? "";
    expect(sparkImage).toBe(`spark:${v.SPARK_VERSION}-scala2.12-java17-python3-ubuntu`);
    expect(final.from).toBe(sparkImage);
    expect(loadConfig([], {}).defaultImage).toBe(
      `ghcr.io/livy-operator/livy-server:${v.LIVY_VERSION}-spark-${v.SPARK_VERSION}`,
    );
    // both stages declare the Livy version (an ARG is scoped to its stage)
    for (const stage of df.stages) {
      const arg = stage.instructions.find((i) => i.op === "ARG" && i.args.startsWith("LIVY_VERSION="));
      expect(arg?.args, `stage ${stage.name ?? stage.index}`).toBe(`LIVY_VERSION=${v.LIVY_VERSION}`);
    }
  });

  it("runs as the uid the operator's pod expects, on the Livy port, in the foreground", () => {
    expect(final.user).toBe(`${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`);
    expect(final.exposed).toEqual([String(LIVY_PORT)]);
    expect(final.env.LIVY_HOME).toBe("/opt/livy");
    const cmd = final.instructions.find((i) => i.op === "CMD")?.args ?? "";
    expect(JSON.parse(cmd)).toEqual(["/opt/livy/bin/livy-server"]); // no "start": exec in the foreground
    expect(final.entrypoint?.[0]).toBe("/usr/bin/tini");
    expect(final.env.PYSPARK_PYTHON).toBe("python3"); // Livy's default "python" is not in the Spark image
  });

  it("reads its configuration where the operator mounts it and writes only to the pod's emptyDirs", () => {
    const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
    expect(env.LIVY_CONF_DIR).toBe(final.env.LIVY_CONF_DIR);
    expect(env.LIVY_LOG_DIR).toBe(final.env.LIVY_LOG_DIR);
    const mounts = container?.volumeMounts ?? [];
    expect(mounts.find((m) => m.name === "conf")?.mountPath).toBe(final.env.LIVY_CONF_DIR);
    const writable = mounts.filter((m) => !("readOnly" in m && m.readOnly)).map((m) => m.mountPath);
    expect(writable.sort()).toEqual(["/opt/livy/logs", "/opt/spark/work-dir", "/tmp"]);
    expect(container?.securityContext.readOnlyRootFilesystem).toBe(true);
    for (const dir of [final.env.HOME, final.env.SPARK_LOCAL_DIRS, final.env.LIVY_LOG_DIR]) {
      expect(
        writable.some((w) => dir === w || dir?.startsWith(`${w}/`)),
        `${dir} is on a writable mount`,
      ).toBe(true);
    }
  });

  it("ships defaults for docker run that match the operator's livy.conf", () => {
    const conf = read("deploy", "livy-image", "conf", "livy.conf");
    expect(conf).toContain("livy.server.host = 0.0.0.0");
    expect(conf).toContain(`livy.server.port = ${LIVY_PORT}`);
  });
});
