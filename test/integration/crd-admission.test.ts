import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_VERSION, KIND, parseLivySession } from "../../src/api/livysession.ts";
import { manifests } from "../fixtures/manifests.ts";
import { testbed } from "../testbed/context.ts";
import { Api } from "./crd-helpers.ts";

/**
 * The generated CRD on the test bed's real kube-apiserver: every manifest of the invalid corpus is refused
 * with a message naming the field, every valid one is stored with the same defaults zod applies.
 */
let api: Api;
let ns: string;

beforeAll(async () => {
  api = new Api(testbed().kubeconfig);
  await api.installCrd();
  ns = await api.createNamespace("crd-admission");
});

afterAll(async () => {
  if (ns) await api.deleteNamespace(ns);
});

describe("invalid LivySessions are refused at admission", () => {
  it.each(manifests("invalid").map((m) => [m.file, m] as const))("%s", async (_f, m) => {
    const r = await api.createSession(ns, m.object);
    expect(r.status, JSON.stringify(r.body)).toBe(422);
    const message = String(r.body.message);
    for (const e of m.expect) expect(message).toContain(e);
  });
});

describe("valid LivySessions are stored with zod's defaults", () => {
  it.each(manifests("valid").map((m) => [m.file, m] as const))("%s", async (_f, m) => {
    const parsed = parseLivySession(m.object);
    expect(parsed.success).toBe(true);
    const r = await api.createSession(ns, m.object);
    expect(r.status, String(r.body.message)).toBe(201);
    const name = (m.object.metadata as { name: string }).name;
    const read = await api.request("GET", api.sessionsPath(ns, name));
    expect(read.status).toBe(200);
    if (parsed.success) expect(read.body.spec).toEqual(parsed.data.spec);
  });

  it("fills the documented defaults", async () => {
    const r = await api.createSession(ns, {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: "defaults" },
    });
    expect(r.status).toBe(201);
    expect(r.body.spec).toEqual({
      kind: "pyspark",
      suspend: false,
      idleTimeout: "15m",
      startupTimeout: "5m",
      failurePolicy: "FailFast",
    });
  });
});

describe("updates", () => {
  const name = "immutable-kind";

  beforeAll(async () => {
    const r = await api.createSession(ns, {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name },
      spec: {},
    });
    expect(r.status).toBe(201);
  });

  it("refuses a change of spec.kind", async () => {
    const r = await api.request(
      "PATCH",
      api.sessionsPath(ns, name),
      { spec: { kind: "spark" } },
      "application/merge-patch+json",
    );
    expect(r.status).toBe(422);
    expect(String(r.body.message)).toContain("spec.kind");
    expect(String(r.body.message)).toContain("kind is immutable");
  });

  it("accepts other spec changes", async () => {
    const r = await api.request(
      "PATCH",
      api.sessionsPath(ns, name),
      { spec: { suspend: true, idleTimeout: "1h" } },
      "application/merge-patch+json",
    );
    expect(r.status, String(r.body.message)).toBe(200);
  });

  it("takes status through the status subresource only, validated", async () => {
    const status = {
      observedGeneration: 2,
      phase: "Suspended",
      conditions: [
        {
          type: "Ready",
          status: "False",
          reason: "Suspended",
          message: "spec.suspend is true",
          lastTransitionTime: new Date().toISOString(),
        },
      ],
    };
    const ok = await api.request(
      "PATCH",
      `${api.sessionsPath(ns, name)}/status`,
      { status },
      "application/merge-patch+json",
    );
    expect(ok.status, String(ok.body.message)).toBe(200);
    expect(parseLivySession(ok.body).success).toBe(true);
    expect(ok.body.status).toEqual(status);

    const bad = { ...status, conditions: [{ ...status.conditions[0], reason: "not camel case" }] };
    const refused = await api.request(
      "PATCH",
      `${api.sessionsPath(ns, name)}/status`,
      { status: bad },
      "application/merge-patch+json",
    );
    expect(refused.status).toBe(422);
    expect(String(refused.body.message)).toContain("status.conditions[0].reason");
    expect(parseLivySession({ ...ok.body, status: bad }).success).toBe(false);

    // status in the main resource is ignored
    const viaMain = await api.request(
      "PATCH",
      api.sessionsPath(ns, name),
      { status: { phase: "Failed" } },
      "application/merge-patch+json",
    );
    expect((viaMain.body.status as { phase?: string }).phase).toBe("Suspended");
  });

  it("prints the columns kubectl shows", async () => {
    const r = await api.request(
      "GET",
      api.sessionsPath(ns),
      undefined,
      "application/json",
      "application/json;as=Table;v=v1;g=meta.k8s.io",
    );
    expect(r.status).toBe(200);
    const columns = (r.body.columnDefinitions as { name: string; priority: number }[]).map((c) =>
      c.priority ? `${c.name}(wide)` : c.name,
    );
    expect(columns).toEqual([
      "Name",
      "Phase",
      "Ready",
      "Reason",
      "State",
      "Endpoint",
      "Kind(wide)",
      "Restarts(wide)",
      "Last-Activity(wide)",
      "Age",
      "Message(wide)",
    ]);
    const row = (r.body.rows as { cells: unknown[] }[]).find((x) => x.cells[0] === name);
    expect(row?.cells.slice(1, 4)).toEqual(["Suspended", "False", "Suspended"]);
  });
});
