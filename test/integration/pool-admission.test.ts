import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { livySessionPoolCrd, POOL_CRD_NAME } from "../../src/api/crd-pool.ts";
import { API_VERSION, GROUP, VERSION } from "../../src/api/livysession.ts";
import { POOL_KIND, POOL_PLURAL, parseLivySessionPool } from "../../src/api/livysessionpool.ts";
import { testbed } from "../testbed/context.ts";
import { Api, until } from "./crd-helpers.ts";

/**
 * The generated LivySessionPool CRD on the test bed's real kube-apiserver: invalid pools are refused with a
 * message naming the field, and zod (parseLivySessionPool) decides the same; valid ones are stored with
 * zod's defaults.
 */
let api: Api;
let ns: string;
const path = (name?: string) =>
  `/apis/${API_VERSION}/namespaces/${ns}/${POOL_PLURAL}${name ? `/${name}` : ""}`;
const pool = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: API_VERSION,
  kind: POOL_KIND,
  metadata: { name },
  spec,
});

beforeAll(async () => {
  api = new Api(testbed().kubeconfig);
  const apply = await api.request(
    "PATCH",
    `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${POOL_CRD_NAME}?fieldManager=livy-operator-tests&force=true`,
    livySessionPoolCrd(),
    "application/apply-patch+yaml",
  );
  expect([200, 201]).toContain(apply.status);
  await until("livysessionpools served", async () => {
    const r = await api.request("GET", `/apis/${GROUP}/${VERSION}`);
    return (
      r.status === 200 && ((r.body.resources ?? []) as { name: string }[]).some((x) => x.name === POOL_PLURAL)
    );
  });
  ns = await api.createNamespace("pool-admission");
});

afterAll(async () => {
  if (ns) await api.deleteNamespace(ns);
});

describe("invalid LivySessionPools are refused at admission, naming the field", () => {
  it.each([
    ["negative size", pool("a", { size: -1 }), ["spec.size"]],
    ["size above 100", pool("a", { size: 101 }), ["spec.size"]],
    ["unknown kind", pool("a", { kind: "java" }), ["spec.kind", "Unsupported value"]],
    [
      "a bad budget quantity",
      pool("a", { budget: { requests: { cpu: "lots" } } }),
      ["spec.budget.requests.cpu"],
    ],
    [
      "an unknown imagePullPolicy",
      pool("a", { server: { imagePullPolicy: "Sometimes" } }),
      ["spec.server.imagePullPolicy"],
    ],
    ["an empty warm-up", pool("a", { warmup: { code: "" } }), ["spec.warmup.code"]],
    ["a name too long for its servers", pool("p".repeat(45), {}), ["metadata.name", "at most 44 characters"]],
  ] as const)("%s", async (_what, obj, expected) => {
    const zod = parseLivySessionPool(obj);
    expect(zod.success, "zod refuses it too").toBe(false);
    const r = await api.request("POST", `${path()}?dryRun=All`, obj);
    expect(r.status, JSON.stringify(r.body)).toBe(422);
    for (const e of expected) expect(String(r.body.message)).toContain(e);
    if (!zod.success) expect(zod.message).toContain(expected[0]);
  });
});

describe("valid LivySessionPools are stored with zod's defaults", () => {
  it("fills size 1 and kind pyspark", async () => {
    const obj = pool("defaults", {});
    const r = await api.request("POST", path(), obj);
    expect(r.status, String(r.body.message)).toBe(201);
    expect(r.body.spec).toEqual({ size: 1, kind: "pyspark" });
    const parsed = parseLivySessionPool(obj);
    expect(parsed.success && parsed.data.spec).toEqual(r.body.spec);
  });

  it("stores a full template and budget as zod reads it", async () => {
    const obj = pool("full", {
      size: 3,
      kind: "spark",
      server: { resources: { requests: { cpu: "500m", memory: "1Gi" } } },
      session: { driverMemory: "1g", conf: { "spark.sql.shuffle.partitions": "4" } },
      warmup: { code: "spark.range(1).count()" },
      budget: { requests: { cpu: "2", memory: "4Gi" } },
    });
    const r = await api.request("POST", path(), obj);
    expect(r.status, String(r.body.message)).toBe(201);
    const parsed = parseLivySessionPool(obj);
    expect(parsed.success && parsed.data.spec).toEqual(r.body.spec);
  });
});
