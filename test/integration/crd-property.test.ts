import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parseLivySession } from "../../src/api/livysession.ts";
import { testbed } from "../testbed/context.ts";
import { Api } from "./crd-helpers.ts";
import { livySessionArbitrary } from "./livysession-arbitrary.ts";

/**
 * The zod schema and the generated CRD come from one source; this proves they decide alike. Random
 * LivySessions, valid and invalid mixed, go to the real kube-apiserver with server-side dry-run: it must
 * admit exactly those zod's parse accepts, and store exactly the spec (defaults included) zod returns.
 * CRD_PROPERTY_RUNS and CRD_PROPERTY_SEED reproduce or widen a run.
 */
const RUNS = Number(process.env.CRD_PROPERTY_RUNS ?? 200);
const SEED = process.env.CRD_PROPERTY_SEED === undefined ? undefined : Number(process.env.CRD_PROPERTY_SEED);

let api: Api;
let ns: string;

beforeAll(async () => {
  api = new Api(testbed().kubeconfig);
  await api.installCrd();
  ns = await api.createNamespace("crd-property");
});

afterAll(async () => {
  if (ns) await api.deleteNamespace(ns);
});

it(`the API server admits exactly what zod accepts (${RUNS} random LivySessions, dry-run)`, async () => {
  let admitted = 0;
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(livySessionArbitrary, async (generated) => {
      // What goes over the wire (JSON.stringify turns -0 into 0, drops undefined, ...), for both judges.
      const wire = JSON.parse(JSON.stringify(generated)) as Record<string, unknown>;
      const zod = parseLivySession(wire);
      const server = await api.createSession(ns, wire, true);
      if (server.status !== 201 && server.status !== 200 && server.status !== 422) {
        throw new Error(`unexpected HTTP ${server.status}: ${JSON.stringify(server.body)}`);
      }
      const serverAdmits = server.status !== 422;
      const explain = `server: ${serverAdmits ? "admitted" : String(server.body.message)}\nzod: ${
        zod.success ? "accepted" : zod.message
      }\nobject: ${JSON.stringify(wire)}`;
      expect(serverAdmits, explain).toBe(zod.success);
      if (zod.success) {
        expect(server.body.spec, `stored spec differs from zod's\n${explain}`).toEqual(zod.data.spec);
        admitted++;
      } else {
        refused++;
      }
    }),
    { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}), endOnFailure: true },
  );
  process.stderr.write(`[crd-property] ${admitted} admitted, ${refused} refused, zod agreed on all\n`);
  // A mix, or the property says little: both decisions must be well represented.
  expect(admitted).toBeGreaterThan(RUNS * 0.15);
  expect(refused).toBeGreaterThan(RUNS * 0.15);
});
