import { describe, expect, it } from "vitest";
import {
  CREDENTIAL_FILTER_CLASS,
  CREDENTIAL_MOUNT_DIR,
  credentialSecretName,
  sessionCredential,
} from "../../src/api/index.ts";
import { loadConfig } from "../../src/operator/config.ts";
import {
  CREDENTIAL_HASH_ANNOTATION,
  desiredNetworkPolicy,
  hashOf,
  livyConf,
  usesCredential,
} from "../../src/operator/objects.ts";
import type { DesiredObject } from "../../src/operator/plan.ts";
import { livySession, ok, readyStatus, resource, SETTINGS, step, T0, world } from "./operator-world.ts";

/**
 * The per-session credential on the operator's side: decide() gives a server that demands it its Secret,
 * its filter and its mount, rewrites the Secret (and nothing else) when the shared key changed, and never
 * puts the credential anywhere but in that Secret.
 */
const KEY = Buffer.alloc(32, 7);
const CRED = sessionCredential(KEY, "uid-1");
const ROTATED = sessionCredential(Buffer.alloc(32, 8), "uid-1");

type Obj = DesiredObject["object"] & Record<string, unknown>;
const byKind = (apply: DesiredObject[] | undefined) =>
  Object.fromEntries((apply ?? []).map((d) => [d.kind, d.object as Obj])) as Record<string, Obj>;

describe("the per-session credential in decide()", () => {
  it("applies the credential's Secret with the server, the filter in livy.conf and the Secret mounted", () => {
    const { plan } = step(world(resource(), { credential: CRED }));
    expect(plan.apply?.map((a) => a.kind)).toEqual(["deployment", "configMap", "service", "credential"]);
    const o = byKind(plan.apply);
    const secret = o.credential as Obj & { data: Record<string, string> };
    expect(secret.metadata.name).toBe(credentialSecretName("ws"));
    expect(secret.metadata).toMatchObject({
      namespace: "data",
      ownerReferences: [expect.objectContaining({ kind: "LivySession", uid: "uid-1", controller: true })],
    });
    expect(Buffer.from(secret.data.token ?? "", "base64").toString()).toBe(CRED);
    expect(secret.metadata.annotations[CREDENTIAL_HASH_ANNOTATION]).toBe(hashOf(CRED));

    const conf = (o.configMap as Obj & { data: Record<string, string> }).data["livy.conf"];
    expect(conf).toContain("livy.server.auth.type = session");
    expect(conf).toContain(`livy.server.auth.session.class = ${CREDENTIAL_FILTER_CLASS}`);
    expect(conf).toContain(`livy.server.auth.session.param.token-file = ${CREDENTIAL_MOUNT_DIR}/token`);

    const dep = o.deployment as Obj;
    expect(dep.metadata.annotations[CREDENTIAL_HASH_ANNOTATION]).toBe(hashOf(CRED));
    const pod = (
      dep as unknown as {
        spec: {
          template: {
            spec: {
              volumes: Array<{ name: string; secret?: { secretName: string } }>;
              containers: Array<{ volumeMounts: Array<{ name: string; mountPath: string }> }>;
            };
          };
        };
      }
    ).spec.template.spec;
    expect(pod.volumes).toContainEqual(
      expect.objectContaining({
        name: "credential",
        secret: expect.objectContaining({ secretName: credentialSecretName("ws") }),
      }),
    );
    expect(pod.containers[0]?.volumeMounts).toContainEqual({
      name: "credential",
      mountPath: CREDENTIAL_MOUNT_DIR,
      readOnly: true,
    });
  });

  it("puts the credential only in its Secret: not in the Deployment, the ConfigMap, the Service or the status", () => {
    const first = step(world(resource(), { credential: CRED }));
    for (const d of first.plan.apply ?? [])
      if (d.kind !== "credential") expect(JSON.stringify(d.object)).not.toContain(CRED);
    // the next step, the server starting: its status
    const { plan } = step(world(resource(), { credential: CRED, server: "progressing" }));
    expect(plan.status).toBeDefined();
    expect(JSON.stringify(plan)).not.toContain(CRED);
  });

  it("gives a server without the shared key neither filter, Secret nor mount", () => {
    const { plan } = step(world(resource()));
    expect(plan.apply?.map((a) => a.kind)).toEqual(["deployment", "configMap", "service"]);
    const o = byKind(plan.apply);
    expect(JSON.stringify(o.configMap)).not.toContain("livy.server.auth");
    expect(JSON.stringify(o.deployment)).not.toContain("credential");
  });

  it("applies nothing more while the server has the current credential", () => {
    const { plan } = step(world(resource(), { credential: CRED, server: "progressing" }));
    expect(plan.apply).toBeUndefined();
    expect(plan.credentialHash).toBeUndefined();
  });

  it("after a new key rewrites the Secret and records its digest, without rolling the server", () => {
    const { plan } = step(
      world(resource({}, { status: readyStatus() }), {
        credential: ROTATED,
        serverCredential: CRED,
        server: "available",
      }),
    );
    expect(plan.apply?.map((a) => a.kind)).toEqual(["credential"]);
    const secret = byKind(plan.apply).credential as Obj & { data: Record<string, string> };
    expect(Buffer.from(secret.data.token ?? "", "base64").toString()).toBe(ROTATED);
    expect(plan.credentialHash).toBe(hashOf(ROTATED));
    expect(plan.requeueAfterMs).toBe(0);
    expect(plan.status, "the Ready session stays as it is").toBeUndefined();
  });
});

describe("the credential's Secret goes with its server", () => {
  it("stays with the Service and ConfigMap at the idle teardown: only the Deployment goes", () => {
    const spec = { idleTimeout: "10m" };
    const { plan } = step(
      world(resource(spec, { status: readyStatus(spec) }), {
        credential: CRED,
        server: "available",
        now: T0 + 10 * 60_000,
      }),
      { session: ok(livySession(7, "idle")), activity: ok({ busy: false, latestMs: 0 }) },
    );
    expect(plan.deleteOwned).toEqual(["deployment"]);
  });

  it("is deleted with the server when the server fails", () => {
    const spec = { failurePolicy: "FailFast" };
    const { plan } = step(
      world(resource(spec, { status: readyStatus(spec) }), { credential: CRED, server: "available" }),
      { session: ok(livySession(7, "dead")) },
    );
    expect(plan.deleteOwned).toEqual(["deployment", "service", "configMap", "credential"]);
  });
});

describe("usesCredential and livyConf", () => {
  it("applies to a server with the key, unless the LivySession brings its own authentication", () => {
    expect(usesCredential({}, true)).toBe(true);
    expect(usesCredential({}, false)).toBe(false);
    expect(usesCredential({ auth: { type: "Bearer", secretName: "s" } }, true)).toBe(false);
    expect(usesCredential({ server: { livyConf: { "livy.server.auth.type": "kerberos" } } }, true)).toBe(
      false,
    );
    expect(usesCredential({ server: { livyConf: { "livy.spark.master": "local" } } }, true)).toBe(true);
  });

  it("puts the filter after the user's livyConf, so that it cannot be turned off by a conf key", () => {
    const conf = livyConf({ "livy.server.auth.session.param.token-file": "/tmp/x" }, true);
    expect(conf["livy.server.auth.session.param.token-file"]).toBe(`${CREDENTIAL_MOUNT_DIR}/token`);
  });
});

describe("the default NetworkPolicy", () => {
  it("admits only the gateway's and the operator's pods, in the operator's namespace, to Livy's and the Spark UI's ports", () => {
    const np = desiredNetworkPolicy(
      { apiVersion: "livy.dev/v1alpha1", kind: "LivySession", name: "ws", namespace: "data", uid: "uid-1" },
      "livy-system",
    );
    expect(np.spec.podSelector).toEqual({ matchLabels: { "livy.dev/session": "ws" } });
    expect(np.spec.policyTypes).toEqual(["Ingress"]);
    const ns = { matchLabels: { "kubernetes.io/metadata.name": "livy-system" } };
    expect(np.spec.ingress).toEqual([
      {
        from: [
          {
            namespaceSelector: ns,
            podSelector: { matchLabels: { "app.kubernetes.io/name": "livy-operator" } },
          },
          {
            namespaceSelector: ns,
            podSelector: { matchLabels: { "app.kubernetes.io/name": "livy-gateway" } },
          },
        ],
        // Livy's port and the Spark UI's
        ports: [
          { protocol: "TCP", port: 8998 },
          { protocol: "TCP", port: 4040 },
        ],
      },
    ]);
  });

  it("is on by default, and off with --network-policy false", () => {
    expect(loadConfig([], {}).networkPolicy).toBe(true);
    expect(loadConfig(["--network-policy", "false"], {}).networkPolicy).toBe(false);
    const { plan } = step(world(resource(), { settings: { ...SETTINGS, networkPolicy: true } }));
    expect(plan.apply?.map((a) => a.kind)).toContain("networkPolicy");
  });
});
