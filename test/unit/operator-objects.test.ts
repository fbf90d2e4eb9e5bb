import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, serverUrl } from "../../src/operator/config.ts";
import {
  desiredConfigMap,
  desiredDeployment,
  desiredService,
  livyConf,
  type OwnerRef,
  SPEC_HASH_ANNOTATION,
  upToDate,
} from "../../src/operator/objects.ts";

const owner: OwnerRef = {
  apiVersion: "livy.dev/v1alpha1",
  kind: "LivySession",
  name: "ws",
  namespace: "data",
  uid: "u-1",
};
const defaults = {
  image: "livy:default",
  imagePullPolicy: "IfNotPresent" as const,
  resources: { requests: { cpu: "1" } },
};

describe("desired objects", () => {
  it("owns every object with a controller reference and names them livy-<name>", () => {
    for (const o of [
      desiredConfigMap(owner, undefined),
      desiredService(owner),
      desiredDeployment(owner, undefined, defaults, "h"),
    ]) {
      expect(o.metadata.name).toBe("livy-ws");
      expect(o.metadata.namespace).toBe("data");
      expect(o.metadata.ownerReferences).toEqual([
        {
          apiVersion: "livy.dev/v1alpha1",
          kind: "LivySession",
          name: "ws",
          uid: "u-1",
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      expect(o.metadata.labels["app.kubernetes.io/managed-by"]).toBe("livy-operator");
      expect(o.metadata.annotations[SPEC_HASH_ANNOTATION]).toMatch(/^[0-9a-f]{16}$/);
    }
  });

  it("renders livy.conf with the operator's settings, user keys overriding them", () => {
    const conf = livyConf({
      "livy.spark.master": "k8s://https://kubernetes.default.svc",
      "livy.rsc.rpc.max.size": "1024",
    });
    expect(conf["livy.spark.master"]).toBe("k8s://https://kubernetes.default.svc");
    expect(conf["livy.server.session.timeout-check"]).toBe("false");
    const cm = desiredConfigMap(owner, { livyConf: { "livy.rsc.rpc.max.size": "1024" } });
    expect(cm.data["livy.conf"]).toContain("livy.rsc.rpc.max.size = 1024\n");
    expect(cm.data["livy.conf"]).toContain("livy.server.port = 8998\n");
    // Livy's launcher never gives up on a driver before startupTimeout could
    expect(cm.data["livy-client.conf"]).toBe("livy.rsc.server.connect.timeout = 1h\n");
  });

  it("builds a locked-down single-replica Deployment from spec.server with defaults", () => {
    const d = desiredDeployment(owner, undefined, defaults, "cfg");
    expect(d.spec.replicas).toBe(1);
    expect(d.spec.strategy.type).toBe("Recreate");
    const pod = d.spec.template.spec;
    const c = pod.containers[0]!;
    expect(c.image).toBe("livy:default");
    expect(c.resources).toEqual({ requests: { cpu: "1" } });
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod).toMatchObject({ automountServiceAccountToken: false });
    expect(d.spec.template.metadata.annotations["livy.dev/config-hash"]).toBe("cfg");

    const custom = desiredDeployment(
      owner,
      {
        image: "my/livy:1",
        imagePullPolicy: "Always",
        env: [{ name: "A", value: "1" }],
        serviceAccountName: "spark",
        nodeSelector: { pool: "spark" },
        podLabels: { team: "x", "livy.dev/session": "spoofed" },
      },
      defaults,
      "cfg",
    );
    const cp = custom.spec.template.spec;
    expect(cp.containers[0]?.image).toBe("my/livy:1");
    expect(cp.containers[0]?.env).toContainEqual({ name: "A", value: "1" });
    expect(cp).toMatchObject({ serviceAccountName: "spark", nodeSelector: { pool: "spark" } });
    // the selector label cannot be overridden by podLabels
    expect(custom.spec.template.metadata.labels["livy.dev/session"]).toBe("ws");
    expect(custom.spec.template.metadata.labels.team).toBe("x");
  });

  it("exposes port 8998 and the Spark UI's 4040 through a ClusterIP Service selecting the session's pod", () => {
    const s = desiredService(owner);
    expect(s.spec).toEqual({
      type: "ClusterIP",
      selector: { "livy.dev/session": "ws" },
      ports: [
        { name: "http", port: 8998, targetPort: "http", protocol: "TCP" },
        { name: "spark-ui", port: 4040, targetPort: 4040, protocol: "TCP" },
      ],
    });
  });

  it("detects a changed spec through the hash", () => {
    const a = desiredDeployment(owner, undefined, defaults, "h1");
    const b = desiredDeployment(owner, undefined, defaults, "h2");
    expect(upToDate(a, a)).toBe(true);
    expect(upToDate(a, b)).toBe(false);
    expect(upToDate(undefined, a)).toBe(false);
  });
});

describe("operator config", () => {
  it("applies defaults", () => {
    const c = loadConfig([], {});
    expect(c).toMatchObject({
      namespaces: [],
      concurrency: 16,
      leaderElect: false,
      serverUrlTemplate: "http://{service}.{namespace}.svc:{port}",
    });
  });
  it("reads flags before env", () => {
    const c = loadConfig(["--concurrency", "4", "--namespaces", "a,b"], {
      LIVY_OPERATOR_CONCURRENCY: "9",
      LIVY_OPERATOR_LEADER_ELECT: "true",
    });
    expect(c.concurrency).toBe(4);
    expect(c.namespaces).toEqual(["a", "b"]);
    expect(c.leaderElect).toBe(true);
  });
  it.each([
    [["--concurrency", "0"], "--concurrency / LIVY_OPERATOR_CONCURRENCY"],
    [["--concurrency", "many"], "--concurrency"],
    [["--namespaces", "Bad_NS"], "--namespaces"],
    [["--server-url-template", "ftp://x"], "--server-url-template"],
    [["--server-url-template", "http://{svc}:1"], "placeholders"],
    [["--log-level", "loud"], "--log-level"],
    [["--default-resources", '{"requests":{"cpu":"lots"}}'], "--default-resources"],
  ])("refuses %j naming the setting", (argv, message) => {
    expect(() => loadConfig(argv, {})).toThrow(ConfigError);
    expect(() => loadConfig(argv, {})).toThrow(message);
  });
  it("fills the server URL template", () => {
    expect(
      serverUrl("http://{service}.{namespace}.svc:{port}/", {
        name: "a",
        namespace: "b",
        service: "livy-a",
        port: 8998,
      }),
    ).toBe("http://livy-a.b.svc:8998");
  });
});
