import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LivySession, SESSION_CONF_DEFAULTS } from "../../src/api/index.ts";
import { CORE, KubeApiError, resourcePath } from "../../src/kube/client.ts";
import {
  applySession,
  condition,
  installCrd,
  kube,
  kubectl,
  metricValue,
  type OperatorProcess,
  phaseIs,
  startOperator,
  until,
  waitFor,
} from "../integration/harness.ts";
import { testbed } from "../testbed/context.ts";
import { KWOK_NAMESPACE_ANNOTATIONS } from "../testbed/controlplane.ts";
import { convergedGone, convergedReady, owned, sleep } from "./helpers.ts";

/**
 * Names and values at the edges of what the CRD admits, run through the real operator: either the derived
 * objects (livy-<name>, labels, livy.conf, the Livy session's conf) come out valid and the session gets
 * Ready, or the API server refuses an object built from the spec and the session ends Failed with reason
 * InvalidSpec and the API server's words. Never a reconcile error loop. What the CRD itself refuses is the
 * corpus of test/integration/crd-admission.test.ts.
 */
describe("hostile LivySession specs through the operator", () => {
  // a namespace of the longest allowed name, so that every derived name is as long as it gets
  const ns = `hostile-${Date.now().toString(36)}-`.padEnd(63, "x");
  let op: OperatorProcess;
  const errors = async () =>
    metricValue(await op.metrics(), "controller_runtime_reconcile_total", { result: "error" });
  const reconciles = async () => metricValue(await op.metrics(), "controller_runtime_reconcile_total");

  beforeAll(async () => {
    await installCrd();
    await (await kube()).create("/api/v1/namespaces", {
      metadata: { name: ns, annotations: { ...KWOK_NAMESPACE_ANNOTATIONS } },
    });
    op = await startOperator({ name: "hostile", args: ["--namespaces", ns] });
  });

  afterAll(async () => {
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
      () => "",
    );
    await op?.stop();
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("the longest name in the longest namespace, and odd but valid values everywhere, get Ready verbatim", async () => {
    const name = `0${"a-".repeat(28)}z`; // 58 characters, starts with a digit
    expect(name).toHaveLength(58);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${X} is the point
    const odd = "ünï \"quoted\" 'single' $(HOME) ${X} `tick` # hash = eq \\ back";
    const spec = {
      kind: "pyspark",
      idleTimeout: "1h",
      server: {
        podLabels: { "example.com/team": "A.b_c-9", z: "" },
        podAnnotations: { "example.com/note": `${odd}\nsecond line\t{"json": [1, 2]}`, a: "" },
        env: [
          { name: "ODD", value: `${odd}\nline 2` },
          { name: "EMPTY", value: "" },
          { name: "_.-x", value: "dots and dashes" },
        ],
        livyConf: { "livy.server.odd-value_1": odd, "livy.rsc.x": "a=b=c" },
        nodeSelector: { "kubernetes.io/os": "linux" },
      },
      session: {
        conf: {
          "spark.driver.extraJavaOptions": `-Dx="${odd}"`,
          "spark.ünïcode.key": "value",
          "spark.a=b": "key with =",
          "spark.empty": "",
        },
        name: "ignored-the-operator-names-it",
      },
    };
    await applySession(ns, name, spec);
    await convergedReady(ns, [name], 60_000);
    const k = await kube();
    const cm = await k.get<{ data: Record<string, string> }>(
      resourcePath(CORE.configMaps, ns, `livy-${name}`),
    );
    expect(cm.data["livy.conf"]).toContain(`livy.server.odd-value_1 = ${odd}\n`);
    expect(cm.data["livy.conf"]).toContain("livy.rsc.x = a=b=c\n");
    const ls = await k.get<LivySession>(
      resourcePath(
        { group: "livy.dev", version: "v1alpha1", plural: "livysessions", namespaced: true },
        ns,
        name,
      ),
    );
    const livy = (await (
      await fetch(`${testbed().standinUrl}/sessions/${ls.status?.livySessionId}`)
    ).json()) as {
      name: string;
      conf: Record<string, string>;
    };
    // verbatim, under the conf the operator adds to every Livy session (SESSION_CONF_DEFAULTS)
    expect(livy.conf).toEqual({ ...SESSION_CONF_DEFAULTS, ...spec.session.conf });
    expect(livy.name.startsWith(`${ns}.${name}.`)).toBe(true);
    expect(await errors()).toBe(0);
    await k.delete(
      resourcePath(
        { group: "livy.dev", version: "v1alpha1", plural: "livysessions", namespaced: true },
        ns,
        name,
      ),
    );
    await convergedGone(ns);
  });

  const refusedByDerived: Array<[string, Record<string, unknown>, RegExp]> = [
    [
      "pod annotations over the API server's 256 KiB total",
      {
        podAnnotations: Object.fromEntries(
          Array.from({ length: 32 }, (_, i) => [`example.com/a${i}`, "x".repeat(8192)]),
        ),
      },
      /annotations: Too long: may not be more than 262144 bytes/,
    ],
    [
      "a memory request above its limit",
      { resources: { requests: { memory: "4Gi" }, limits: { memory: "1Gi" } } },
      /must be less than or equal to memory limit/,
    ],
    [
      "a resource name no container may request",
      { resources: { requests: { "no-such-resource": "1" } } },
      /must be a standard resource/,
    ],
  ];

  it.each(refusedByDerived)(
    "%s: admitted by the CRD, refused in the Deployment: Failed InvalidSpec, no error loop",
    async (label, server, apiMessage) => {
      const name = `bad-${refusedByDerived.findIndex((c) => c[0] === label)}`;
      const before = await errors();
      try {
        await applySession(ns, name, { kind: "pyspark", failurePolicy: "Recover", server });
      } catch (err) {
        throw new Error(`the CRD refused ${label} (the corpus' job, not this test's): ${String(err)}`);
      }
      const failed = await waitFor(ns, name, phaseIs("Failed"), "Failed", 20_000);
      expect(condition(failed, "Ready")).toMatchObject({ reason: "InvalidSpec" });
      expect(failed.status?.message).toMatch(apiMessage);
      // not retried: no restart under Recover (the same spec fails the same way), no error
      expect(failed.status?.restarts ?? 0).toBe(0);
      expect(await errors()).toBe(before);
      await until("partly applied objects removed", async () => {
        const o = await owned(ns);
        return ![...o.deployments, ...o.services, ...o.configmaps].includes(`livy-${name}`);
      });
      // and quiet once their deletions were seen (a retry loop would make ~6 passes in 3 s of backoff)
      await sleep(500);
      const passes = await reconciles();
      await sleep(3_000);
      expect(await reconciles()).toBeLessThanOrEqual(passes + 1);
      expect(await errors()).toBe(before);
      // a corrected spec starts it again
      await applySession(ns, name, { kind: "pyspark", failurePolicy: "Recover" });
      await convergedReady(ns, [name], 30_000);
      await (await kube()).delete(
        resourcePath(
          { group: "livy.dev", version: "v1alpha1", plural: "livysessions", namespaced: true },
          ns,
          name,
        ),
      );
      await convergedGone(ns);
    },
  );

  it("a service account that does not exist ends Failed with the controller's reason, not Pending", async () => {
    const before = await errors();
    await applySession(ns, "no-sa", { kind: "pyspark", server: { serviceAccountName: "no-such-account" } });
    const failed = await waitFor(ns, "no-sa", phaseIs("Failed"), "Failed", 30_000);
    expect(condition(failed, "Ready")?.reason).toBe("ReplicaFailure");
    expect(failed.status?.message).toMatch(/no-such-account/);
    expect(await errors()).toBe(before);
  });

  it("a name one character too long is refused at admission, naming the field", async () => {
    const err = await applySession(ns, "x".repeat(59), { kind: "pyspark" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).status).toBe(422);
    expect((err as KubeApiError).message).toMatch(/metadata.name/);
  });
});
