import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { livySessionSchema, MAX_NAME_LENGTH } from "../../src/api/index.ts";
import { loadConfig } from "../../src/operator/config.ts";
import { LIVY_PORT } from "../../src/operator/objects.ts";
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

describe("the Dockerfiles (the images themselves are checked as built: test/integration/images.test.ts)", () => {
  const v = versions();
  const argDefaults = (text: string, name: string) =>
    [...text.matchAll(new RegExp(`^ARG ${name}=(.*)$`, "gm"))].map((m) => m[1]);

  it("deploy/livy-image builds the Livy and Spark versions the test bed runs, on the one Debian base", () => {
    const df = read("deploy", "livy-image", "Dockerfile");
    // an ARG is scoped to its stage: every stage that declares one has the same default
    expect(new Set(argDefaults(df, "LIVY_VERSION"))).toEqual(new Set([v.LIVY_VERSION]));
    expect(new Set(argDefaults(df, "SPARK_VERSION"))).toEqual(new Set([v.SPARK_VERSION]));
    expect(argDefaults(df, "BASE_IMAGE")).toEqual(["debian:bookworm-slim"]);
    expect(loadConfig([], {}).defaultImage).toBe(
      `ghcr.io/livy-operator/livy-server:${v.LIVY_VERSION}-spark-${v.SPARK_VERSION}`,
    );
  });

  it("the operator's Dockerfile installs the Node major the project runs on, on the same base", () => {
    const df = read("Dockerfile");
    expect(argDefaults(df, "NODE_VERSION")[0]).toMatch(new RegExp(`^${v.NODE_MAJOR}\\.`));
    expect(argDefaults(df, "BASE_IMAGE")).toEqual(["debian:bookworm-slim"]);
  });

  it("deploy/livy-image ships defaults for docker run that match the operator's livy.conf", () => {
    const conf = read("deploy", "livy-image", "conf", "livy.conf");
    expect(conf).toContain("livy.server.host = 0.0.0.0");
    expect(conf).toContain(`livy.server.port = ${LIVY_PORT}`);
  });
});
