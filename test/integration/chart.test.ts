import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, stringify } from "yaml";
import { CHART_CRD_TEMPLATE, CRD_FILE, CRD_NAME, livySessionCrd } from "../../src/api/crd.ts";
import { POOL_CHART_CRD_TEMPLATE, POOL_CRD_NAME } from "../../src/api/crd-pool.ts";
import { CORE, resourcePath } from "../../src/kube/client.ts";
import { loadConfig } from "../../src/operator/config.ts";
import { LIVYSESSIONS } from "../../src/operator/reconciler.ts";
import { testbed } from "../testbed/context.ts";
import { REPO_ROOT, versions } from "../testbed/paths.ts";
import { gw, runThroughGateway, startGateway, textOf } from "./gateway-harness.ts";
import {
  createNamespace,
  exists,
  installCrd,
  isReady,
  kube,
  kubectl,
  kubectlEnv,
  type OperatorProcess,
  serviceAccountKubeconfig,
  startOperator,
  until,
  waitFor,
} from "./harness.ts";

const run = promisify(execFile);
const CHART = join(REPO_ROOT, "charts", "livy-operator");
const KUBE_VERSION = ["--kube-version", versions().K8S_VERSION ?? "1.34.4"];
const SA = { group: "", version: "v1", plural: "serviceaccounts", namespaced: true };
/** Directories made by the suite (chart copies), removed after it. */
const tempDirs: string[] = [];
const NETWORK_POLICIES = {
  group: "networking.k8s.io",
  version: "v1",
  plural: "networkpolicies",
  namespaced: true,
};

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: unknown;
}
interface Container {
  name: string;
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  securityContext?: Record<string, unknown>;
  livenessProbe?: { httpGet?: { path: string; port: string | number }; timeoutSeconds?: number };
  readinessProbe?: { httpGet?: { path: string; port: string | number }; timeoutSeconds?: number };
  ports?: Array<{ name: string; containerPort: number }>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

async function helm(args: string[]): Promise<string> {
  try {
    return (await run("helm", args, { env: kubectlEnv(), maxBuffer: 64 << 20 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`helm ${args.join(" ")} failed: ${e.stderr || e.stdout || e.message}`);
  }
}

/** helm template with the given --set/--set-json flags, parsed into objects. */
async function template(flags: string[] = [], namespace = "livy-operator"): Promise<K8sObject[]> {
  const out = await helm(["template", "lo", CHART, "--namespace", namespace, ...KUBE_VERSION, ...flags]);
  return parseAllDocuments(out)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

const byKind = (objs: K8sObject[], kind: string) => objs.filter((o) => o.kind === kind);
/** The operator's Deployment (component operator), or the gateway's. */
const deploymentOf = (objs: K8sObject[], component = "operator") => {
  const d = byKind(objs, "Deployment").find(
    (o) => o.metadata.labels?.["app.kubernetes.io/component"] === component,
  );
  if (!d) throw new Error(`no ${component} Deployment rendered`);
  return d as K8sObject & {
    spec: {
      replicas: number;
      template: { spec: { containers: Container[]; securityContext: Record<string, unknown> } };
    };
  };
};
const containerOf = (objs: K8sObject[], component = "operator") =>
  deploymentOf(objs, component).spec.template.spec.containers[0] as Container;
const named = (objs: K8sObject[], kind: string, name: string) =>
  byKind(objs, kind).find((o) => o.metadata.name === name);
const envOf = (c: Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));

/** sessionCredentials.enabled (default): each LivySession's credential Secret. */
const CREDENTIAL_SECRETS_RULE: Rule = {
  apiGroups: [""],
  resources: ["secrets"],
  verbs: ["create", "patch", "delete"],
};
/** The rules the operator needs (chart README, "Permissions"); the rendered roles must be exactly these. */
const OPERATOR_RULES: Rule[] = [
  {
    apiGroups: ["livy.dev"],
    resources: ["livysessions"],
    // create and delete: a warm pool's servers are LivySessions it owns (docs/warm-pool.md)
    verbs: ["get", "list", "watch", "create", "patch", "update", "delete"],
  },
  { apiGroups: ["livy.dev"], resources: ["livysessions/status"], verbs: ["get", "patch", "update"] },
  { apiGroups: ["livy.dev"], resources: ["livysessionpools"], verbs: ["get", "list", "watch"] },
  { apiGroups: ["livy.dev"], resources: ["livysessionpools/status"], verbs: ["get", "patch", "update"] },
  { apiGroups: ["livy.dev"], resources: ["livysessions/finalizers"], verbs: ["update"] },
  {
    apiGroups: ["apps"],
    resources: ["deployments"],
    verbs: ["get", "list", "watch", "create", "patch", "delete"],
  },
  {
    apiGroups: [""],
    resources: ["services", "configmaps"],
    verbs: ["get", "list", "watch", "create", "patch", "delete"],
  },
  { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
  { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
  { apiGroups: [""], resources: ["secrets"], verbs: ["get"] },
  CREDENTIAL_SECRETS_RULE,
  // Spark's kubernetes mode: the drivers' ServiceAccounts and RoleBindings, bound with `bind` only
  {
    apiGroups: [""],
    resources: ["serviceaccounts"],
    verbs: ["get", "list", "watch", "create", "patch", "delete"],
  },
  {
    apiGroups: ["rbac.authorization.k8s.io"],
    resources: ["rolebindings"],
    verbs: ["get", "list", "watch", "create", "patch", "delete"],
  },
  {
    apiGroups: ["rbac.authorization.k8s.io"],
    resources: ["clusterroles"],
    verbs: ["bind"],
    resourceNames: ["lo-livy-operator-spark-driver"],
  },
];
/** The drivers' ClusterRole (chart README, "Permissions"). */
const SPARK_DRIVER_RULES: Rule[] = [
  {
    apiGroups: [""],
    resources: ["pods"],
    verbs: ["get", "list", "watch", "create", "patch", "delete", "deletecollection"],
  },
  {
    apiGroups: [""],
    resources: ["configmaps", "services", "persistentvolumeclaims"],
    verbs: ["get", "list", "watch", "create", "delete", "deletecollection"],
  },
];
/** networkPolicy.enabled (default): the Livy servers' NetworkPolicies. */
const NETWORK_POLICY_RULE: Rule = {
  apiGroups: ["networking.k8s.io"],
  resources: ["networkpolicies"],
  verbs: ["get", "list", "watch", "create", "patch", "delete"],
};
/** The gateway's rules on LivySessions (chart README, "Permissions"), besides system:auth-delegator. */
const GATEWAY_RULES: Rule[] = [
  { apiGroups: ["livy.dev"], resources: ["livysessions"], verbs: ["get", "list", "watch", "patch"] },
];

describe("the Helm chart", () => {
  afterAll(() => {
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });

  it("passes helm lint, default and --strict, with default and non-default values", async () => {
    await helm(["lint", CHART]);
    await helm(["lint", "--strict", CHART]);
    const out = await helm([
      "lint",
      "--strict",
      CHART,
      "--set",
      "replicaCount=2",
      "--set",
      "watchNamespaces={team-a,team-b}",
      "--set",
      "serviceMonitor.enabled=true",
    ]);
    expect(out).toContain("0 chart(s) failed");
  });

  it("renders the defaults: cluster-wide RBAC, one replica, a hardened Deployment configured by env", async () => {
    const objs = await template();
    expect(objs.map((o) => o.kind).sort()).toEqual(
      [
        "APIService",
        "ClusterRole",
        "ClusterRole",
        "ClusterRole",
        "ClusterRole",
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "Deployment",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "Service",
        "Service",
        "Service",
        "ServiceAccount",
        "ServiceAccount",
      ].sort(),
    );
    const role = byKind(objs, "ClusterRole").find((r) => r.metadata.name === "lo-livy-operator") as
      | (K8sObject & { rules: Rule[] })
      | undefined;
    expect(role?.rules).toEqual([...OPERATOR_RULES, NETWORK_POLICY_RULE]);
    const driverRole = named(objs, "ClusterRole", "lo-livy-operator-spark-driver") as K8sObject & {
      rules: Rule[];
    };
    expect(driverRole.rules).toEqual(SPARK_DRIVER_RULES);
    expect(envOf(containerOf(objs)).LIVY_OPERATOR_SPARK_DRIVER_CLUSTER_ROLE).toBe(
      "lo-livy-operator-spark-driver",
    );
    const binding = named(objs, "ClusterRoleBinding", "lo-livy-operator") as K8sObject & {
      subjects: Array<{ kind: string; name: string; namespace: string }>;
    };
    expect(binding.subjects).toEqual([
      { kind: "ServiceAccount", name: "lo-livy-operator", namespace: "livy-operator" },
    ]);

    const d = deploymentOf(objs);
    expect(d.spec.replicas).toBe(1);
    const pod = d.spec.template.spec;
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: "RuntimeDefault" },
    });
    const c = containerOf(objs);
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(c.resources?.requests?.memory).toBeDefined();
    expect(c.resources?.limits?.memory).toBeDefined();
    expect(c.ports).toEqual([{ name: "http", containerPort: 8080, protocol: "TCP" }]);
    expect(c.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "http" });
    expect(c.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "http" });
    // a probe slower than 2 s at load 60-70 restarted a healthy operator: 5 s by default
    expect(c.livenessProbe?.timeoutSeconds).toBe(5);
    expect(c.readinessProbe?.timeoutSeconds).toBe(5);
    expect(c.args).toBeUndefined();
    const env = envOf(c);
    expect(env.LIVY_OPERATOR_DEFAULT_IMAGE).toBe(
      "ghcr.io/livy-operator/livy-server:0.9.0-incubating-spark-3.5.7",
    );
    expect(JSON.parse(env.LIVY_OPERATOR_DEFAULT_RESOURCES ?? "{}")).toEqual({
      requests: { cpu: "500m", memory: "1Gi" },
      limits: { memory: "2Gi" },
    });
    expect(env.LIVY_OPERATOR_HTTP_PORT).toBe("8080");
    expect(env.LIVY_OPERATOR_LEADER_ELECTION_NAMESPACE).toBe("livy-operator");
    // every LIVY_OPERATOR_* variable the chart sets is one the operator reads
    const config = readFileSync(join(REPO_ROOT, "src", "operator", "config.ts"), "utf8");
    for (const name of Object.keys(env)) {
      const flag = name
        .replace(/^LIVY_OPERATOR_/, "")
        .toLowerCase()
        .replaceAll("_", "-");
      expect(config, `${name} (--${flag})`).toContain(`"${flag}"`);
    }
    expect(env.LIVY_OPERATOR_NETWORK_POLICY).toBe("true");
    expect(env.LIVY_OPERATOR_WATCH_TIMEOUT_SECONDS).toBeUndefined();
    // the per-session credential: the key's Secret, which the operator makes and both read by name
    expect(env.LIVY_OPERATOR_SESSION_KEY_SECRET).toBe("livy-operator/lo-livy-operator-session-key");
    expect(envOf(containerOf(objs, "gateway")).LIVY_GATEWAY_SESSION_KEY_SECRET).toBe(
      "livy-operator/lo-livy-operator-session-key",
    );
    const keyRole = named(objs, "Role", "lo-livy-operator-session-key") as K8sObject & { rules: Rule[] };
    expect(keyRole.metadata.namespace).toBe("livy-operator");
    expect(keyRole.rules).toEqual([
      { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
      {
        apiGroups: [""],
        resources: ["secrets"],
        resourceNames: ["lo-livy-operator-session-key"],
        verbs: ["get"],
      },
    ]);
    const readerRole = named(objs, "Role", "lo-livy-operator-session-key-reader") as K8sObject & {
      rules: Rule[];
    };
    expect(readerRole.rules).toEqual([
      {
        apiGroups: [""],
        resources: ["secrets"],
        resourceNames: ["lo-livy-operator-session-key"],
        verbs: ["get"],
      },
    ]);
    const readerBinding = named(objs, "RoleBinding", "lo-livy-operator-session-key-reader") as K8sObject & {
      subjects: Array<{ name: string }>;
    };
    expect(readerBinding.subjects.map((x) => x.name)).toEqual(["lo-livy-operator-gateway"]);
    // off: no key, no Secret permissions beyond spec.auth's get, no Roles for it
    const off = await template(["--set", "sessionCredentials.enabled=false"]);
    expect(envOf(containerOf(off)).LIVY_OPERATOR_SESSION_KEY_SECRET).toBeUndefined();
    expect(byKind(off, "Role").map((r) => r.metadata.name)).not.toContain("lo-livy-operator-session-key");
    const offRole = byKind(off, "ClusterRole").find((r) => r.metadata.name === "lo-livy-operator") as
      | (K8sObject & { rules: Rule[] })
      | undefined;
    expect(offRole?.rules).toEqual([
      ...OPERATOR_RULES.filter((r) => r !== CREDENTIAL_SECRETS_RULE),
      NETWORK_POLICY_RULE,
    ]);
  });

  it("renders the gateway: two hardened replicas of the operator image, its own labels, RBAC, PDB and Services", async () => {
    const objs = await template();
    const d = deploymentOf(objs, "gateway");
    expect(d.metadata.name).toBe("lo-livy-operator-gateway");
    expect(d.spec.replicas).toBe(2);
    const pod = d.spec.template as unknown as {
      metadata: { labels: Record<string, string> };
      spec: { serviceAccountName: string; securityContext: Record<string, unknown> };
    };
    // not selected by the operator's Deployment, Service or PDB (app.kubernetes.io/name=livy-operator)
    expect(pod.metadata.labels["app.kubernetes.io/name"]).toBe("livy-gateway");
    expect(pod.spec.serviceAccountName).toBe("lo-livy-operator-gateway");
    expect(pod.spec.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: "RuntimeDefault" },
    });
    const c = containerOf(objs, "gateway") as Container & { command?: string[]; image?: string };
    expect(c.image).toBe((containerOf(objs) as Container & { image?: string }).image);
    expect(c.command).toEqual(["node", "dist/gateway/main.js"]);
    expect(c.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(c.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ["livy", 8998],
      ["http", 8080],
      ["apiserver", 8443],
    ]);
    expect(c.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "http" });
    const env = envOf(c);
    expect(env.LIVY_GATEWAY_MAX_BODY_BYTES).toBe("16777216");
    // every LIVY_GATEWAY_* variable the chart sets is one the gateway reads
    const config = readFileSync(join(REPO_ROOT, "src", "gateway", "config.ts"), "utf8");
    for (const name of Object.keys(env)) {
      const flag = name
        .replace(/^LIVY_GATEWAY_/, "")
        .toLowerCase()
        .replaceAll("_", "-");
      expect(config, `${name} (--${flag})`).toContain(`"${flag}"`);
    }
    const role = named(objs, "ClusterRole", "lo-livy-operator-gateway") as K8sObject & { rules: Rule[] };
    expect(role.rules).toEqual(GATEWAY_RULES);
    const delegator = named(
      objs,
      "ClusterRoleBinding",
      "lo-livy-operator-gateway-auth-delegator",
    ) as K8sObject & {
      roleRef: { name: string };
      subjects: Array<{ name: string }>;
    };
    expect(delegator.roleRef.name).toBe("system:auth-delegator");
    expect(delegator.subjects[0]?.name).toBe("lo-livy-operator-gateway");
    expect(named(objs, "PodDisruptionBudget", "lo-livy-operator-gateway")).toBeDefined();
    const svc = named(objs, "Service", "lo-livy-operator-gateway") as K8sObject & {
      spec: { type: string; ports: Array<{ name: string; port: number }> };
    };
    expect(svc.spec.type).toBe("ClusterIP");
    expect(svc.spec.ports).toEqual([{ name: "livy", port: 8998, targetPort: "livy", protocol: "TCP" }]);
    // the aggregated roles: edit runs code through the gateway, view reads
    const edit = named(objs, "ClusterRole", "lo-livy-operator-livysessions-edit") as K8sObject & {
      rules: Rule[];
    };
    expect(edit.rules).toContainEqual({
      apiGroups: ["livy.dev"],
      resources: ["livysessions/proxy"],
      verbs: ["get", "create", "delete"],
    });
    const view = named(objs, "ClusterRole", "lo-livy-operator-livysessions-view") as K8sObject & {
      rules: Rule[];
    };
    expect(view.rules).toContainEqual({
      apiGroups: ["livy.dev"],
      resources: ["livysessions/proxy"],
      verbs: ["get"],
    });
    expect(
      await template(["--set", "gateway.enabled=false"]).then((o) =>
        o.filter((x) => x.metadata.name.includes("gateway")),
      ),
    ).toEqual([]);
  });

  it("registers the gateway as an aggregated API version of livy.dev, with only what that needs", async () => {
    const objs = await template();
    const api = named(objs, "APIService", "gateway.livy.dev") as K8sObject & {
      spec: Record<string, unknown> & { service: { name: string; port: number } };
    };
    expect(api.spec).toMatchObject({ group: "livy.dev", version: "gateway", versionPriority: 1 });
    expect(api.spec.caBundle).toBeUndefined(); // the gateway sets it to the certificate it makes
    expect(api.spec.service).toEqual({
      namespace: "livy-operator",
      name: "lo-livy-operator-gateway-apiserver",
      port: 443,
    });
    const svc = named(objs, "Service", "lo-livy-operator-gateway-apiserver") as K8sObject & {
      spec: { ports: Array<{ port: number; targetPort: string }> };
    };
    expect(svc.spec.ports[0]).toMatchObject({ port: 443, targetPort: "apiserver" });
    const env = envOf(containerOf(objs, "gateway"));
    expect(env.LIVY_GATEWAY_APISERVER_PORT).toBe("8443");
    expect(env.LIVY_GATEWAY_APISERVER_TLS_SECRET).toBe("livy-operator/lo-livy-operator-gateway-serving");
    expect(env.LIVY_GATEWAY_APISERVER_DNS_NAMES).toBe("lo-livy-operator-gateway-apiserver.livy-operator.svc");
    expect(env.LIVY_GATEWAY_API_SERVICE).toBe("gateway.livy.dev");
    const serving = named(objs, "Role", "lo-livy-operator-gateway-serving") as K8sObject & { rules: Rule[] };
    expect(serving.rules).toEqual([
      { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
      {
        apiGroups: [""],
        resources: ["secrets"],
        resourceNames: ["lo-livy-operator-gateway-serving"],
        verbs: ["get", "update"],
      },
    ]);
    const apiRole = named(objs, "ClusterRole", "lo-livy-operator-gateway-apiservice") as K8sObject & {
      rules: Rule[];
    };
    expect(apiRole.rules).toEqual([
      {
        apiGroups: ["apiregistration.k8s.io"],
        resources: ["apiservices"],
        resourceNames: ["gateway.livy.dev"],
        verbs: ["get", "patch"],
      },
    ]);
    const reader = named(objs, "RoleBinding", "lo-livy-operator-gateway-auth-reader") as K8sObject & {
      roleRef: { name: string };
    };
    expect(reader.metadata.namespace).toBe("kube-system");
    expect(reader.roleRef.name).toBe("extension-apiserver-authentication-reader");
    const off = await template(["--set", "gateway.apiService.enabled=false"]);
    expect(off.map((o) => o.kind)).not.toContain("APIService");
    expect(envOf(containerOf(off, "gateway")).LIVY_GATEWAY_APISERVER_PORT).toBeUndefined();
  });

  it("exposes the gateway: LoadBalancer, Ingress with TLS, or HTTPS in the gateway itself", async () => {
    const objs = await template([
      "--set",
      "gateway.service.type=LoadBalancer",
      "--set",
      "gateway.service.loadBalancerSourceRanges={10.0.0.0/8}",
      "--set",
      "gateway.ingress.enabled=true",
      "--set",
      "gateway.ingress.className=nginx",
      "--set",
      "gateway.ingress.host=livy.example.com",
      "--set-json",
      'gateway.ingress.tls=[{"secretName":"livy-tls","hosts":["livy.example.com"]}]',
      "--set",
      "gateway.tls.secretName=gateway-tls",
    ]);
    const svc = named(objs, "Service", "lo-livy-operator-gateway") as K8sObject & {
      spec: { type: string; loadBalancerSourceRanges: string[] };
    };
    expect(svc.spec.type).toBe("LoadBalancer");
    expect(svc.spec.loadBalancerSourceRanges).toEqual(["10.0.0.0/8"]);
    const ing = named(objs, "Ingress", "lo-livy-operator-gateway") as K8sObject & {
      spec: {
        ingressClassName: string;
        tls: unknown;
        rules: Array<{ host: string; http: { paths: Array<{ backend: unknown }> } }>;
      };
    };
    expect(ing.spec.ingressClassName).toBe("nginx");
    expect(ing.spec.tls).toEqual([{ secretName: "livy-tls", hosts: ["livy.example.com"] }]);
    expect(ing.spec.rules[0]?.host).toBe("livy.example.com");
    expect(ing.spec.rules[0]?.http.paths[0]?.backend).toEqual({
      service: { name: "lo-livy-operator-gateway", port: { name: "livy" } },
    });
    expect(containerOf(objs, "gateway").args).toEqual([
      "--tls-cert-file=/etc/livy-gateway/tls/tls.crt",
      "--tls-key-file=/etc/livy-gateway/tls/tls.key",
    ]);
  });

  it("networkPolicy.enabled (the default): the operator makes NetworkPolicies, with the permission for them", async () => {
    const objs = await template(["--set", "config.watchTimeoutSeconds=300"]);
    const env = envOf(containerOf(objs));
    expect(env.LIVY_OPERATOR_NETWORK_POLICY).toBe("true");
    expect(env.LIVY_OPERATOR_NETWORK_POLICY_OPERATOR_NAMESPACE).toBe("livy-operator");
    expect(env.LIVY_OPERATOR_WATCH_TIMEOUT_SECONDS).toBe("300");
    const role = byKind(objs, "ClusterRole").find((r) => r.metadata.name === "lo-livy-operator") as
      | (K8sObject & { rules: Rule[] })
      | undefined;
    expect(role?.rules).toEqual([...OPERATOR_RULES, NETWORK_POLICY_RULE]);
    const off = await template(["--set", "networkPolicy.enabled=false"]);
    expect(envOf(containerOf(off)).LIVY_OPERATOR_NETWORK_POLICY).toBeUndefined();
    expect(
      (
        byKind(off, "ClusterRole").find((r) => r.metadata.name === "lo-livy-operator") as K8sObject & {
          rules: Rule[];
        }
      ).rules,
    ).toEqual(OPERATOR_RULES);
    // the policies admit the operator by app.kubernetes.io/name=livy-operator
    const pod = deploymentOf(objs).spec.template as unknown as {
      metadata: { labels: Record<string, string> };
    };
    expect(pod.metadata.labels["app.kubernetes.io/name"]).toBe("livy-operator");
    const err = await template(["--set", "networkPolicy.enabled=true", "--set", "nameOverride=spark"]).catch(
      (e: Error) => e,
    );
    expect(String(err)).toContain("leave nameOverride empty");
  });

  it("watchNamespaces: a Role and RoleBinding per namespace, no cluster-wide grant, --namespaces", async () => {
    const objs = await template(["--set", "watchNamespaces={team-a,team-b}"]);
    // TokenReview and SubjectAccessReview are cluster-scoped: the gateway's one cluster-wide binding
    expect(
      byKind(objs, "ClusterRoleBinding").map(
        (b) => (b as K8sObject & { roleRef: { name: string } }).roleRef.name,
      ),
    ).toEqual(["system:auth-delegator", "lo-livy-operator-gateway-apiservice"]);
    expect(byKind(objs, "ClusterRole").map((r) => r.metadata.name)).not.toContain("lo-livy-operator");
    expect(byKind(objs, "ClusterRole").map((r) => r.metadata.name)).not.toContain("lo-livy-operator-gateway");
    const roles = byKind(objs, "Role") as Array<K8sObject & { rules: Rule[] }>;
    const operatorRoles = roles.filter((r) => r.metadata.name === "lo-livy-operator");
    expect(operatorRoles.map((r) => r.metadata.namespace).sort()).toEqual(["team-a", "team-b"]);
    for (const r of operatorRoles) expect(r.rules).toEqual([...OPERATOR_RULES, NETWORK_POLICY_RULE]);
    const gatewayRoles = roles.filter((r) => r.metadata.name === "lo-livy-operator-gateway");
    expect(gatewayRoles.map((r) => r.metadata.namespace).sort()).toEqual(["team-a", "team-b"]);
    for (const r of gatewayRoles) expect(r.rules).toEqual(GATEWAY_RULES);
    expect(containerOf(objs, "gateway").args).toEqual(["--namespaces=team-a,team-b"]);
    const bindings = (
      byKind(objs, "RoleBinding") as Array<
        K8sObject & { subjects: Array<{ namespace: string }>; roleRef: { kind: string } }
      >
    ).filter((b) => b.metadata.name === "lo-livy-operator");
    expect(bindings.map((b) => b.metadata.namespace).sort()).toEqual(["team-a", "team-b"]);
    for (const b of bindings) {
      expect(b.roleRef.kind).toBe("Role");
      expect(b.subjects[0]?.namespace).toBe("livy-operator");
    }
    expect(containerOf(objs).args).toEqual(["--namespaces=team-a,team-b"]);
  });

  it("replicaCount 2: --leader-elect, a Lease role in the release namespace, a PodDisruptionBudget", async () => {
    const objs = await template(["--set", "replicaCount=2"]);
    expect(deploymentOf(objs).spec.replicas).toBe(2);
    expect(containerOf(objs).args).toEqual(["--leader-elect=true"]);
    expect(envOf(containerOf(objs)).LIVY_OPERATOR_LEADER_ELECTION_ID).toBe("lo-livy-operator-leader");
    const pdb = named(objs, "PodDisruptionBudget", "lo-livy-operator") as
      | (K8sObject & { spec: { minAvailable: number } })
      | undefined;
    expect(pdb?.spec.minAvailable).toBe(1);
    const lease = named(objs, "Role", "lo-livy-operator-leader-election") as K8sObject & { rules: Rule[] };
    expect(lease?.metadata.namespace).toBe("livy-operator");
    expect(lease?.rules).toEqual([
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
      {
        apiGroups: ["coordination.k8s.io"],
        resources: ["leases"],
        resourceNames: ["lo-livy-operator-leader"],
        verbs: ["get", "update"],
      },
    ]);
    // one replica: neither leader election nor a PDB (it would block node drains)
    const single = await template(["--set", "podDisruptionBudget.enabled=true"]);
    expect(byKind(single, "PodDisruptionBudget").map((p) => p.metadata.name)).toEqual([
      "lo-livy-operator-gateway",
    ]);
    expect(byKind(single, "Role").map((r) => r.metadata.name)).toEqual([
      "lo-livy-operator-gateway-serving",
      "lo-livy-operator-session-key",
      "lo-livy-operator-session-key-reader",
    ]);
  });

  it("serviceMonitor.enabled: a ServiceMonitor selecting the metrics Service", async () => {
    const objs = await template([
      "--set",
      "serviceMonitor.enabled=true",
      "--set",
      "serviceMonitor.labels.release=prom",
    ]);
    const [sm, gsm] = ["lo-livy-operator", "lo-livy-operator-gateway"].map((n) =>
      named(objs, "ServiceMonitor", n),
    ) as Array<
      K8sObject & {
        spec: { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string }> };
      }
    >;
    expect(sm?.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(sm?.metadata.labels?.release).toBe("prom");
    expect(sm?.spec.endpoints[0]?.port).toBe("http");
    const svc = named(objs, "Service", "lo-livy-operator-metrics");
    for (const [k, v] of Object.entries(sm?.spec.selector.matchLabels ?? {})) {
      expect(svc?.metadata.labels?.[k], k).toBe(v);
    }
    // the operator's ServiceMonitor does not select the gateway's Services, and the gateway's has its own
    for (const g of byKind(objs, "Service").filter((o) => o.metadata.name.includes("gateway")))
      expect(
        Object.entries(sm?.spec.selector.matchLabels ?? {}).every(([k, v]) => g.metadata.labels?.[k] === v),
      ).toBe(false);
    const gsvc = named(objs, "Service", "lo-livy-operator-gateway-metrics");
    for (const [k, v] of Object.entries(gsm?.spec.selector.matchLabels ?? {})) {
      expect(gsvc?.metadata.labels?.[k], k).toBe(v);
    }
  });

  it("commonLabels: on every object the chart renders and on its pods, never in a selector", async () => {
    const objs = await template([
      "--set",
      "commonLabels.team=data",
      "--set-string",
      "commonLabels.example\\.com/cost-center=42",
      "--set",
      "replicaCount=2",
      "--set",
      "serviceMonitor.enabled=true",
      "--set",
      "networkPolicy.enabled=true",
      "--set",
      "gateway.ingress.enabled=true",
      "--set",
      "watchNamespaces={team-a}",
    ]);
    // every kind the chart can render, so that a template without the labels is noticed
    const kinds = new Set(objs.map((o) => o.kind));
    for (const kind of [
      "CustomResourceDefinition",
      "ServiceAccount",
      "Role",
      "RoleBinding",
      "ClusterRole",
      "ClusterRoleBinding",
      "Deployment",
      "Service",
      "PodDisruptionBudget",
      "ServiceMonitor",
      "Ingress",
    ])
      expect(kinds, kind).toContain(kind);
    for (const o of objs) {
      expect(o.metadata.labels?.team, `${o.kind}/${o.metadata.name}`).toBe("data");
      expect(o.metadata.labels?.["example.com/cost-center"], `${o.kind}/${o.metadata.name}`).toBe("42");
    }
    for (const component of ["operator", "gateway"]) {
      const d = deploymentOf(objs, component) as unknown as {
        spec: {
          selector: { matchLabels: Record<string, string> };
          template: { metadata: { labels: Record<string, string> } };
        };
      };
      expect(d.spec.template.metadata.labels.team).toBe("data");
      expect(
        d.spec.selector.matchLabels.team,
        "a selector is immutable: commonLabels stay out",
      ).toBeUndefined();
    }
  });

  it("extraVolumes, extraVolumeMounts, envFrom and extraEnv for the operator and the gateway", async () => {
    const volumes = [{ name: "ca", configMap: { name: "corp-ca" } }];
    const mounts = [{ name: "ca", mountPath: "/etc/corp-ca", readOnly: true }];
    const envFrom = [
      { secretRef: { name: "proxy-env" } },
      { configMapRef: { name: "tuning" }, prefix: "X_" },
    ];
    const env = [{ name: "NODE_EXTRA_CA_CERTS", value: "/etc/corp-ca/ca.crt" }];
    const flags = (prefix: string) => [
      "--set-json",
      `${prefix}extraVolumes=${JSON.stringify(volumes)}`,
      "--set-json",
      `${prefix}extraVolumeMounts=${JSON.stringify(mounts)}`,
      "--set-json",
      `${prefix}envFrom=${JSON.stringify(envFrom)}`,
      "--set-json",
      `${prefix}extraEnv=${JSON.stringify(env)}`,
    ];
    const objs = await template([...flags(""), ...flags("gateway.")]);
    for (const component of ["operator", "gateway"]) {
      const pod = deploymentOf(objs, component).spec.template.spec as unknown as {
        volumes: Array<{ name: string }>;
        containers: Array<Container & { envFrom?: unknown[]; volumeMounts: Array<{ name: string }> }>;
      };
      const c = pod.containers[0];
      expect(
        pod.volumes.map((v) => v.name),
        component,
      ).toEqual(["tmp", "ca"]);
      expect(pod.volumes[1], component).toEqual(volumes[0]);
      expect(c?.volumeMounts.at(-1), component).toEqual(mounts[0]);
      expect(c?.envFrom, component).toEqual(envFrom);
      expect(c?.env?.at(-1), component).toEqual(env[0]);
    }
    // unset: nothing rendered
    const plain = containerOf(await template()) as Container & { envFrom?: unknown };
    expect(plain.envFrom).toBeUndefined();
  });

  it("livyServer pod defaults and sessionConf: handed to the operator as JSON it accepts", async () => {
    const server = {
      imagePullSecrets: [{ name: "regcred" }],
      env: [{ name: "HTTPS_PROXY", value: "http://proxy:3128" }],
      envFrom: [{ configMapRef: { name: "site-env" } }],
      volumes: [{ name: "ca", configMap: { name: "corp-ca", defaultMode: 292 } }],
      volumeMounts: [{ name: "ca", mountPath: "/etc/corp-ca", readOnly: true }],
      affinity: { podAntiAffinity: {} },
      priorityClassName: "interactive",
      tolerations: [{ key: "dedicated", operator: "Exists" }],
      podLabels: { team: "platform" },
    };
    const flags = Object.entries(server).flatMap(([k, v]) => [
      "--set-json",
      `livyServer.${k}=${JSON.stringify(v)}`,
    ]);
    const env = envOf(
      containerOf(
        await template([...flags, "--set-string", "livyServer.sessionConf.spark\\.ui\\.enabled=false"]),
      ),
    );
    expect(JSON.parse(env.LIVY_OPERATOR_DEFAULT_SERVER ?? "")).toEqual(server);
    expect(JSON.parse(env.LIVY_OPERATOR_DEFAULT_SESSION_CONF ?? "")).toEqual({ "spark.ui.enabled": "false" });
    const config = loadConfig([], env);
    expect(config.defaultServer).toEqual(server);
    expect(config.defaultSessionConf).toEqual({ "spark.ui.enabled": "false" });
    // none set: neither variable, so the operator's own defaults (none) apply
    const plain = envOf(containerOf(await template()));
    expect(plain.LIVY_OPERATOR_DEFAULT_SERVER).toBeUndefined();
    expect(plain.LIVY_OPERATOR_DEFAULT_SESSION_CONF).toBeUndefined();
  });

  it("podDisruptionBudget: minAvailable, or maxUnavailable (an integer or a percentage) instead", async () => {
    const pdbs = async (flags: string[]) =>
      Object.fromEntries(
        byKind(await template(["--set", "replicaCount=2", ...flags]), "PodDisruptionBudget").map((p) => [
          p.metadata.name,
          (p as K8sObject & { spec: Record<string, unknown> }).spec,
        ]),
      );
    const def = await pdbs([]);
    expect(def["lo-livy-operator"]?.minAvailable).toBe(1);
    expect(def["lo-livy-operator"]?.maxUnavailable).toBeUndefined();
    const max = await pdbs([
      "--set",
      "podDisruptionBudget.maxUnavailable=1",
      "--set",
      "gateway.podDisruptionBudget.maxUnavailable=50%",
    ]);
    expect(max["lo-livy-operator"]?.maxUnavailable).toBe(1);
    expect(max["lo-livy-operator"]?.minAvailable).toBeUndefined();
    expect(max["lo-livy-operator-gateway"]?.maxUnavailable).toBe("50%");
    expect(max["lo-livy-operator-gateway"]?.minAvailable).toBeUndefined();
    const zero = await pdbs(["--set", "podDisruptionBudget.maxUnavailable=0"]);
    expect(zero["lo-livy-operator"]?.maxUnavailable).toBe(0);
  });

  it("crds.enabled renders the CRD (the generated spec, kept on uninstall with crds.keep); false leaves it out", async () => {
    const crdOf = (objs: K8sObject[]) =>
      byKind(objs, "CustomResourceDefinition").find((o) => o.metadata.name === CRD_NAME) as
        | (K8sObject & { metadata: { annotations?: Record<string, string> }; spec: unknown })
        | undefined;
    const crd = crdOf(await template());
    expect(crd?.metadata.name).toBe("livysessions.livy.dev");
    expect(crd?.spec).toEqual(livySessionCrd().spec);
    expect(crd?.metadata.annotations?.["helm.sh/resource-policy"]).toBe("keep");
    expect(crd?.metadata.labels?.["app.kubernetes.io/managed-by"]).toBe("Helm");
    const notKept = crdOf(await template(["--set", "crds.keep=false"]));
    expect(notKept?.metadata.annotations?.["helm.sh/resource-policy"]).toBeUndefined();
    expect(crdOf(await template(["--set", "crds.enabled=false"]))).toBeUndefined();
    // the chart has no crds/ directory: Helm would install it untemplated and never upgrade it
    expect(existsSync(join(CHART, "crds"))).toBe(false);
  });

  it.each([
    [["--set", "replicas=2"], "additional properties 'replicas' not allowed"],
    [["--set", "replicaCount=two"], "/replicaCount"],
    [["--set", "config.logLevel=verbose"], "/config/logLevel"],
    [["--set", "watchNamespaces={Team_A}"], "/watchNamespaces/0"],
    [["--set", "livyServer.serverUrlTemplate=ftp://{service}"], "/livyServer/serverUrlTemplate"],
    [["--set", "livyServer.resources.requests.memory=lots"], "/livyServer/resources/requests/memory"],
    [["--set", "image.digest=latest"], "/image/digest"],
    [["--set", "commonLabels.app\\.kubernetes\\.io/name=x"], "/commonLabels"],
    [["--set", "podDisruptionBudget.maxUnavailable=lots"], "/podDisruptionBudget/maxUnavailable"],
    [["--set-json", 'extraVolumeMounts=[{"name":"ca","mountPath":"etc"}]'], "/extraVolumeMounts/0/mountPath"],
    [["--set-json", 'gateway.envFrom=[{"prefix":"X_"}]'], "/gateway/envFrom/0"],
    [["--set", "crds.enabled=yes"], "/crds/enabled"],
  ])("refuses %j with a message naming the value (values.schema.json)", async (flags, message) => {
    const err = await template(flags).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toContain("values don't meet the specifications of the schema");
    expect(err?.message).toContain(message);
  });

  it("deploy/livy-operator.yaml is the chart rendered with its defaults (npm run render-deploy)", async () => {
    const helmPath = join(testbed().binDirs.find((d) => d.includes("helm")) ?? "", "helm");
    const res = await run(process.execPath, [join(REPO_ROOT, "scripts", "render-deploy.ts"), "--check"], {
      env: { ...process.env, HELM: helmPath },
    }).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code?: number; stderr?: string }) => ({ code: e.code ?? 1, stderr: e.stderr ?? "" }),
    );
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
  });

  describe("against the test bed's API server", () => {
    let releaseNs: string;
    const teamNs: string[] = [];

    beforeAll(async () => {
      await installCrd();
      releaseNs = await createNamespace("chart");
      teamNs.push(await createNamespace("team-a"), await createNamespace("team-b"));
    });
    afterAll(async () => {
      for (const ns of [releaseNs, ...teamNs])
        await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
    });

    it("accepts every rendered object (server-side dry-run), for every variant", async () => {
      const variants: string[][] = [
        [],
        ["--set", "replicaCount=2"],
        ["--set-json", `watchNamespaces=${JSON.stringify(teamNs)}`, "--set", "networkPolicy.enabled=true"],
        [
          "--set",
          "serviceMonitor.enabled=true",
          "--set",
          "rbac.secrets=false",
          "--set",
          `image.digest=sha256:${"a".repeat(64)}`,
        ],
      ];
      const skipped = new Set<string>();
      for (const flags of variants) {
        const objs = (await template(["--include-crds", ...flags], releaseNs)).filter((o) => {
          // The Prometheus Operator's CRD is not installed in the test bed: that kind alone cannot be checked.
          if (o.kind === "ServiceMonitor") skipped.add(`${o.kind}/${o.metadata.name}`);
          return o.kind !== "ServiceMonitor";
        });
        const out = await kubectl(
          ["apply", "--dry-run=server", "--server-side", "--field-manager=chart-test", "-f", "-"],
          objs.map((o) => `---\n${stringify(o)}`).join(""),
        );
        for (const o of objs)
          expect(out, `${o.kind}/${o.metadata.name} (${flags.join(" ")})`).toContain(o.metadata.name);
        expect(out).not.toMatch(/error/i);
      }
      process.stderr.write(
        `[chart] not checked by the API server (monitoring.coreos.com CRD absent in the test bed): ${[...skipped].join(", ")}\n`,
      );
      expect([...skipped].sort()).toEqual([
        "ServiceMonitor/lo-livy-operator",
        "ServiceMonitor/lo-livy-operator-gateway",
      ]);
    });

    describe("helm install, then the operator with exactly the chart's RBAC", () => {
      const release = `lo-${Date.now().toString(36)}`;
      let op: OperatorProcess | null = null;
      let saKubeconfig = "";
      let manifest: K8sObject[] = [];
      let sessionNs = "";

      beforeAll(async () => {
        // The upgrade from the chart's earlier layout (chart README, "The CRD"): a release of the chart with
        // a crds/ directory, whose CRD (kubectl-applied, as Helm's crds/ leaves it: no ownership metadata)
        // lacks the Reason column; handed over to Helm, then upgraded to this chart.
        const old = oldLayoutChart();
        await kubectl(
          ["apply", "--server-side", "--force-conflicts", "-f", "-"],
          readFileSync(join(old, "crds", CRD_FILE), "utf8"),
        );
        // cluster-wide install (the default), as a user would: helm talks to the real API server
        // kwok runs no gateway: an APIService nobody answers would fail discovery for the whole test bed
        // (gateway-apiserver.test.ts has the API server reach a real gateway)
        await helm([
          "install",
          release,
          old,
          "--namespace",
          releaseNs,
          "--set",
          "gateway.apiService.enabled=false",
          "--wait",
          "--timeout",
          "120s",
        ]);
        expect(await crdColumns()).not.toContain("Reason");
        const refused = await helm(["upgrade", release, CHART, "--namespace", releaseNs]).catch(
          (e: Error) => e.message,
        );
        expect(refused).toContain("invalid ownership metadata");
        // the LivySessionPool CRD too, when the other suites applied crds/ before (this chart creates it)
        for (const crd of [CRD_NAME, POOL_CRD_NAME]) {
          if (!(await kubectl(["get", "crd", crd, "--ignore-not-found", "-o", "name"])).trim()) continue;
          await kubectl(["label", "crd", crd, "app.kubernetes.io/managed-by=Helm", "--overwrite"]);
          await kubectl([
            "annotate",
            "crd",
            crd,
            "--overwrite",
            `meta.helm.sh/release-name=${release}`,
            `meta.helm.sh/release-namespace=${releaseNs}`,
          ]);
        }
        await helm([
          "upgrade",
          release,
          CHART,
          "--namespace",
          releaseNs,
          "--reset-then-reuse-values",
          // an operator-wide pod default, which the Livy Deployment below carries
          "--set",
          "livyServer.podLabels.example\\.com/from-chart=yes",
          "--set",
          "gateway.apiService.enabled=false",
          "--wait",
          "--timeout",
          "120s",
        ]);
        manifest = parseAllDocuments(await helm(["get", "manifest", release, "--namespace", releaseNs]))
          .map((d) => d.toJS() as K8sObject | null)
          .filter((o): o is K8sObject => o !== null);
        saKubeconfig = await serviceAccountKubeconfig(releaseNs, `${release}-livy-operator`);
        sessionNs = await createNamespace("sessions");
      });
      afterAll(async () => {
        if (op && op.proc.exitCode === null) await op.kill();
        await kubectl(["delete", "namespace", sessionNs, "--wait=false"]).catch(() => "");
      });

      it("upgraded the CRD handed over from the crds/ layout: the chart's spec, kept on uninstall", async () => {
        expect(await crdColumns()).toContain("Reason");
        const crd = await (await kube()).get<{
          metadata: { labels: Record<string, string>; annotations: Record<string, string> };
          spec: { versions: unknown[] };
        }>(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`);
        expect(crd.metadata.annotations["helm.sh/resource-policy"]).toBe("keep");
        expect(crd.metadata.annotations["meta.helm.sh/release-name"]).toBe(release);
        expect(crd.metadata.labels["helm.sh/chart"]).toMatch(/^livy-operator-/);
        expect(manifest.map((o) => o.kind)).toContain("CustomResourceDefinition");
      });

      it("installed the ServiceAccount, RBAC, the Deployment (available) and the metrics Service", async () => {
        const ns = releaseNs;
        const name = `${release}-livy-operator`;
        expect(await exists(resourcePath(SA, ns, name))).toBe(true);
        expect(await exists(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${name}`)).toBe(true);
        expect(await exists(`/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${name}`)).toBe(true);
        expect(await exists(resourcePath(CORE.services, ns, `${name}-metrics`))).toBe(true);
        const d = await (await kube()).get<{ status: { availableReplicas?: number } }>(
          resourcePath(CORE.deployments, ns, name),
        );
        expect(d.status.availableReplicas).toBe(1);
        expect(manifest.map((o) => o.kind)).toContain("Deployment");
        const g = await (await kube()).get<{ status: { availableReplicas?: number } }>(
          resourcePath(CORE.deployments, ns, `${name}-gateway`),
        );
        expect(g.status.availableReplicas).toBe(2);
        expect(await exists(resourcePath(CORE.services, ns, `${name}-gateway`))).toBe(true);
        const status = await helm(["status", release, "--namespace", ns]);
        expect(status).toContain("STATUS: deployed");
        expect(status).toContain("kubectl apply"); // NOTES: what to apply next
      });

      it("the chart's ServiceAccount may do what the operator needs and nothing more", async () => {
        const can = async (args: string[]) =>
          (
            await run("kubectl", ["--kubeconfig", saKubeconfig, "auth", "can-i", ...args], {
              env: kubectlEnv(),
            }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? "" }))
          ).stdout.trim();
        const who = (
          await run(
            "kubectl",
            ["--kubeconfig", saKubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
            {
              env: kubectlEnv(),
            },
          )
        ).stdout;
        expect(who).toBe(`system:serviceaccount:${releaseNs}:${release}-livy-operator`);
        for (const yes of [
          ["watch", "livysessions.livy.dev", "-A"],
          ["patch", "livysessions.livy.dev", "--subresource=status", "-n", sessionNs],
          // the warm pool: its servers are LivySessions it creates and deletes
          ["create", "livysessions.livy.dev", "-n", sessionNs],
          ["delete", "livysessions.livy.dev", "-n", sessionNs],
          ["watch", "livysessionpools.livy.dev", "-A"],
          ["patch", "livysessionpools.livy.dev", "--subresource=status", "-n", sessionNs],
          ["update", "livysessions.livy.dev", "--subresource=finalizers", "-n", sessionNs],
          ["create", "deployments.apps", "-n", sessionNs],
          ["delete", "services", "-n", sessionNs],
          ["patch", "configmaps", "-n", sessionNs],
          ["list", "pods", "-A"],
          ["create", "events", "-n", sessionNs],
          ["get", "secrets", "-n", sessionNs],
          // sessionCredentials.enabled (default): the LivySession's credential Secret, the shared key's
          ["create", "secrets", "-n", sessionNs],
          ["patch", "secrets", "-n", sessionNs],
          // ... and deletes it with the server (a failure; a parked one keeps it until its deletion)
          ["delete", "secrets", "-n", sessionNs],
          // networkPolicy.enabled (default)
          ["create", "networkpolicies.networking.k8s.io", "-n", sessionNs],
          ["create", "serviceaccounts", "-n", sessionNs],
          ["create", "rolebindings.rbac.authorization.k8s.io", "-n", sessionNs],
          ["bind", `clusterroles.rbac.authorization.k8s.io/${release}-livy-operator-spark-driver`],
        ]) {
          expect(await can(yes), yes.join(" ")).toBe("yes");
        }
        for (const no of [
          ["create", "livysessionpools.livy.dev", "-n", sessionNs],
          ["patch", "livysessionpools.livy.dev", "-n", sessionNs],
          ["list", "secrets", "-n", sessionNs],
          ["watch", "secrets", "-A"],
          ["create", "pods", "-n", sessionNs],
          ["get", "pods", "--subresource=log", "-n", sessionNs],
          ["create", "pods", "--subresource=exec", "-n", sessionNs],
          ["create", "livysessions.livy.dev", "--subresource=status", "-n", sessionNs],
          ["update", "deployments.apps", "-n", sessionNs],
          ["get", "nodes"],
          ["create", "clusterroles.rbac.authorization.k8s.io"],
          // bind only the drivers' ClusterRole: no other role, no escalation, no cluster-wide binding
          ["bind", "clusterroles.rbac.authorization.k8s.io/admin", "-n", sessionNs],
          ["bind", "clusterroles.rbac.authorization.k8s.io/cluster-admin"],
          ["bind", "clusterroles.rbac.authorization.k8s.io/edit", "-n", sessionNs],
          ["escalate", "clusterroles.rbac.authorization.k8s.io"],
          ["create", "clusterrolebindings.rbac.authorization.k8s.io"],
          ["create", "roles.rbac.authorization.k8s.io", "-n", sessionNs],
          // a token for any ServiceAccount (with create on serviceaccounts alone, `can-i create
          // serviceaccounts/token` would ask about an account named token, not the subresource)
          ["create", "serviceaccounts", "--subresource=token", "-n", sessionNs],
          ["delete", "pods", "-n", sessionNs],
          ["create", "leases.coordination.k8s.io", "-n", releaseNs], // one replica: no leader election
          ["update", "secrets", "-n", sessionNs],
        ]) {
          expect(await can(no), no.join(" ")).toBe("no");
        }
      });

      it("reconciles examples/pyspark-minimal.yaml to Ready, and deletes it, as that ServiceAccount", async () => {
        const container = containerOf(manifest);
        // the chart's own configuration (env and args); the local process only changes where it listens
        // and how it reaches Livy (the stand-in: kwok runs no containers)
        const env: Record<string, string> = { KUBECONFIG: saKubeconfig };
        for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
        env.LIVY_OPERATOR_IDENTITY = "chart-test";
        op = await startOperator({
          name: "chart-rbac",
          args: [...(container.args ?? []), "--kubeconfig", saKubeconfig],
          env,
        });
        await kubectl(["apply", "-n", sessionNs, "-f", join(REPO_ROOT, "examples", "pyspark-minimal.yaml")]);
        const ready = await waitFor(sessionNs, "pyspark-minimal", isReady, "Ready", 60_000);
        expect(ready.status?.sessionURL).toBeTruthy();
        const deployment = await (await kube()).get<{
          spec: {
            template: {
              metadata: { labels: Record<string, string> };
              spec: { containers: Array<{ image: string }> };
            };
          };
        }>(resourcePath(CORE.deployments, sessionNs, "livy-pyspark-minimal"));
        expect(deployment.spec.template.spec.containers[0]?.image).toBe(env.LIVY_OPERATOR_DEFAULT_IMAGE);
        expect(
          deployment.spec.template.metadata.labels["example.com/from-chart"],
          "livyServer.podLabels",
        ).toBe("yes");
        const events = await kubectl([
          "get",
          "events",
          "-n",
          sessionNs,
          "--field-selector",
          "involvedObject.kind=LivySession",
          "-o",
          "name",
        ]);
        expect(events.trim().length, "the operator could record Events").toBeGreaterThan(0);

        // Spark's kubernetes mode: with only `bind` on the drivers' ClusterRole, the operator gives the
        // driver its ServiceAccount and RoleBinding (pods on kwok run nothing: executors are the
        // real-node test's, test/e2e/spark-kubernetes.test.ts)
        await kubectl([
          "apply",
          "-n",
          sessionNs,
          "-f",
          join(REPO_ROOT, "examples", "pyspark-kubernetes.yaml"),
        ]);
        await waitFor(sessionNs, "pyspark-kubernetes", isReady, "Ready", 60_000);
        const rb = await (await kube()).get<{ roleRef: { kind: string; name: string }; subjects: unknown[] }>(
          `/apis/rbac.authorization.k8s.io/v1/namespaces/${sessionNs}/rolebindings/livy-pyspark-kubernetes`,
        );
        expect(rb.roleRef).toMatchObject({
          kind: "ClusterRole",
          name: `${release}-livy-operator-spark-driver`,
        });
        expect(rb.subjects).toEqual([
          { kind: "ServiceAccount", name: "livy-pyspark-kubernetes", namespace: sessionNs },
        ]);
        const k8sDeployment = await (await kube()).get<{
          spec: { template: { spec: { serviceAccountName?: string } } };
        }>(resourcePath(CORE.deployments, sessionNs, "livy-pyspark-kubernetes"));
        expect(k8sDeployment.spec.template.spec.serviceAccountName).toBe("livy-pyspark-kubernetes");
        await kubectl(["delete", "-n", sessionNs, "livysession/pyspark-kubernetes", "--timeout=60s"]);
        await until(
          "the driver's ServiceAccount and RoleBinding gone with the LivySession",
          async () =>
            !(await exists(resourcePath(SA, sessionNs, "livy-pyspark-kubernetes"))) &&
            !(await exists(
              `/apis/rbac.authorization.k8s.io/v1/namespaces/${sessionNs}/rolebindings/livy-pyspark-kubernetes`,
            )),
          60_000,
        );

        // the gateway, with exactly its chart RBAC, serves users by the built-in edit and view roles
        const gatewayContainer = containerOf(manifest, "gateway");
        const gatewaySa = `${release}-livy-operator-gateway`;
        const gwKubeconfig = await serviceAccountKubeconfig(releaseNs, gatewaySa);
        const gwCan = async (args: string[]) =>
          (
            await run("kubectl", ["--kubeconfig", gwKubeconfig, "auth", "can-i", ...args], {
              env: kubectlEnv(),
            }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? "" }))
          ).stdout.trim();
        for (const yes of [
          ["create", "tokenreviews.authentication.k8s.io"],
          ["create", "subjectaccessreviews.authorization.k8s.io"],
          ["watch", "livysessions.livy.dev", "-A"],
          ["patch", "livysessions.livy.dev", "-n", sessionNs],
        ])
          expect(await gwCan(yes), `gateway: ${yes.join(" ")}`).toBe("yes");
        for (const no of [
          ["get", "secrets", "-n", sessionNs],
          ["create", "livysessions.livy.dev", "-n", sessionNs],
          ["patch", "livysessions.livy.dev", "--subresource=status", "-n", sessionNs],
          ["create", "pods", "-n", sessionNs],
          ["get", "services", "-n", sessionNs],
        ])
          expect(await gwCan(no), `gateway: ${no.join(" ")}`).toBe("no");
        const gwEnv: Record<string, string> = {};
        for (const e of gatewayContainer.env ?? []) if (e.value !== undefined) gwEnv[e.name] = e.value;
        const gate = await startGateway({
          name: "chart-rbac",
          kubeconfig: gwKubeconfig,
          env: gwEnv,
          args: gatewayContainer.args ?? [],
        });
        try {
          const k = await kube();
          for (const [sa, role] of [
            ["analyst", "edit"],
            ["auditor", "view"],
          ] as const) {
            await k.create(`/api/v1/namespaces/${sessionNs}/serviceaccounts`, { metadata: { name: sa } });
            await k.create(`/apis/rbac.authorization.k8s.io/v1/namespaces/${sessionNs}/rolebindings`, {
              metadata: { name: sa },
              roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
              subjects: [{ kind: "ServiceAccount", name: sa, namespace: sessionNs }],
            });
          }
          const token = async (sa: string) =>
            (await kubectl(["create", "token", sa, "-n", sessionNs])).trim();
          const [analyst, auditor] = [await token("analyst"), await token("auditor")];
          // the aggregation controller adds the chart's rules to edit and view
          await until(
            "edit aggregates livysessions/proxy",
            async () =>
              (
                await kubectl([
                  "auth",
                  "can-i",
                  "create",
                  "livysessions.livy.dev",
                  "--subresource=proxy",
                  "-n",
                  sessionNs,
                  `--as=system:serviceaccount:${sessionNs}:analyst`,
                ]).catch(() => "no")
              ).trim() === "yes",
          );
          const { statement } = await runThroughGateway(
            gate.url,
            sessionNs,
            "pyspark-minimal",
            analyst,
            "20 + 22",
          );
          expect(textOf(statement)).toBe("42");
          expect(
            (await gw(gate.url, sessionNs, "pyspark-minimal", "GET", "/sessions/0", { token: auditor }))
              .status,
          ).toBe(200);
          const refused = await gw(gate.url, sessionNs, "pyspark-minimal", "POST", "/sessions/0/statements", {
            token: auditor,
            body: { code: "1" },
          });
          expect(refused.status).toBe(403);
          expect(gate.logs()).not.toMatch(/forbidden/i);
        } finally {
          expect(await gate.stop()).toBe(0);
        }

        await kubectl([
          "delete",
          "-n",
          sessionNs,
          "-f",
          join(REPO_ROOT, "examples", "pyspark-minimal.yaml"),
          "--timeout=60s",
        ]);
        await until(
          "the LivySession gone (finalizer removed by the operator)",
          async () => !(await exists(resourcePath(LIVYSESSIONS, sessionNs, "pyspark-minimal"))),
          60_000,
        );
        expect(op.logs()).not.toMatch(/forbidden/i);
        expect(await op.stop()).toBe(0);
        op = null;
      });

      it("helm uninstall removes the release's objects and keeps the CRD", async () => {
        await helm(["uninstall", release, "--namespace", releaseNs, "--wait", "--timeout", "120s"]);
        const name = `${release}-livy-operator`;
        await until(
          "the release's objects gone",
          async () =>
            !(await exists(resourcePath(CORE.deployments, releaseNs, name))) &&
            !(await exists(resourcePath(CORE.services, releaseNs, `${name}-metrics`))) &&
            !(await exists(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${name}`)) &&
            !(await exists(`/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${name}`)),
          60_000,
        );
        expect(
          await exists("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/livysessions.livy.dev"),
        ).toBe(true);
        expect(await crdColumns(), "the upgraded CRD stays").toContain("Reason");
      });
    });

    describe("helm install with watchNamespaces, two replicas and NetworkPolicies (Roles, leader election)", () => {
      const release = `lon-${Date.now().toString(36)}`;
      let op: OperatorProcess | null = null;

      afterAll(async () => {
        if (op && op.proc.exitCode === null) await op.kill();
        await helm(["uninstall", release, "--namespace", releaseNs]).catch(() => "");
      });

      it("serves LivySessions in a watched namespace, elected leader, with only the Roles", async () => {
        const [watched, other] = teamNs as [string, string];
        await helm([
          "install",
          release,
          CHART,
          "--namespace",
          releaseNs,
          "--set-json",
          `watchNamespaces=${JSON.stringify([watched])}`,
          "--set",
          "replicaCount=2",
          "--set",
          "networkPolicy.enabled=true",
          // the first release owns the CRD (kept after its uninstall): a second one leaves it alone
          "--set",
          "crds.enabled=false",
          "--set",
          "gateway.apiService.enabled=false",
          "--wait",
          "--timeout",
          "120s",
        ]);
        const name = `${release}-livy-operator`;
        expect(await exists(`/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${name}`)).toBe(false);
        expect(await exists(`/apis/policy/v1/namespaces/${releaseNs}/poddisruptionbudgets/${name}`)).toBe(
          true,
        );
        const manifest = parseAllDocuments(await helm(["get", "manifest", release, "--namespace", releaseNs]))
          .map((d) => d.toJS() as K8sObject | null)
          .filter((o): o is K8sObject => o !== null);
        const container = containerOf(manifest);
        expect(container.args).toEqual([`--namespaces=${watched}`, "--leader-elect=true"]);
        const saKubeconfig = await serviceAccountKubeconfig(releaseNs, name);
        const env: Record<string, string> = {
          KUBECONFIG: saKubeconfig,
          LIVY_OPERATOR_IDENTITY: "chart-test-0",
        };
        for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
        op = await startOperator({
          name: "chart-namespaced",
          args: [...(container.args ?? []), "--kubeconfig", saKubeconfig],
          env,
        });
        const lease = await until(
          "the leader Lease held by this replica",
          async () => {
            const l = await (await kube()).getOrNull<{ spec: { holderIdentity?: string } }>(
              resourcePath(CORE.leases, releaseNs, `${name}-leader`),
            );
            return l?.spec.holderIdentity === "chart-test-0" ? l : null;
          },
          30_000,
        );
        expect(lease.spec.holderIdentity).toBe("chart-test-0");
        await kubectl(["apply", "-n", watched, "-f", join(REPO_ROOT, "examples", "pyspark-minimal.yaml")]);
        await waitFor(watched, "pyspark-minimal", isReady, "Ready", 60_000);
        // networkPolicy.enabled: the Role lets it create the Livy server's NetworkPolicy
        expect(await exists(resourcePath(NETWORK_POLICIES, watched, "livy-pyspark-minimal"))).toBe(true);
        // outside the watched namespaces: not served (and not even readable by this ServiceAccount)
        await kubectl(["apply", "-n", other, "-f", join(REPO_ROOT, "examples", "pyspark-minimal.yaml")]);
        await new Promise((r) => setTimeout(r, 3_000));
        const untouched = await (await kube()).get<{ status?: unknown; metadata: { finalizers?: string[] } }>(
          resourcePath(LIVYSESSIONS, other, "pyspark-minimal"),
        );
        expect(untouched.status).toBeUndefined();
        expect(untouched.metadata.finalizers ?? []).toEqual([]);
        await kubectl(["delete", "-n", watched, "livysession/pyspark-minimal", "--timeout=60s"]);
        await kubectl(["delete", "-n", other, "livysession/pyspark-minimal", "--timeout=60s"]);
        expect(op.logs()).not.toMatch(/forbidden/i);
        expect(await op.stop()).toBe(0);
        op = null;
      });
    });
  });
});

/**
 * The chart as it was laid out before the CRD became a template: the CRD in crds/ (Helm installs it once and
 * never upgrades it), without the Reason column added later, and without the LivySessionPool CRD. A copy in a temp dir, removed after the suite.
 */
function oldLayoutChart(): string {
  const dir = mkdtempSync(join(tmpdir(), "chart-old-layout-"));
  tempDirs.push(dir);
  const chart = join(dir, "livy-operator");
  cpSync(CHART, chart, { recursive: true });
  rmSync(join(chart, "templates", CHART_CRD_TEMPLATE));
  rmSync(join(chart, "templates", POOL_CHART_CRD_TEMPLATE));
  const crd = livySessionCrd() as {
    spec: { versions: Array<{ additionalPrinterColumns: Array<{ name: string }> }> };
  };
  for (const v of crd.spec.versions)
    v.additionalPrinterColumns = v.additionalPrinterColumns.filter((c) => c.name !== "Reason");
  mkdirSync(join(chart, "crds"));
  writeFileSync(join(chart, "crds", CRD_FILE), stringify(crd));
  return chart;
}

/** The printer columns of the CRD as served. */
async function crdColumns(): Promise<string[]> {
  const crd = await (await kube()).get<{
    spec: { versions: Array<{ additionalPrinterColumns?: Array<{ name: string }> }> };
  }>(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`);
  return (crd.spec.versions[0]?.additionalPrinterColumns ?? []).map((c) => c.name);
}
