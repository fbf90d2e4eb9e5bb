import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testbed } from "../testbed/context.ts";
import { FAKE_NODE, KWOK_TAINT } from "../testbed/controlplane.ts";
import { REAL_NODE } from "../testbed/node.ts";
import { MAX_SLOTS, networkFor } from "../testbed/slots.ts";
import { createNamespace, kubectl, until } from "./harness.ts";

const run = promisify(execFile);

/**
 * The test bed's real node: a kubelet, containerd and kube-proxy in a network namespace of their own, cluster
 * DNS, pods that reach Services by name and the API server through the `kubernetes` Service, and the API server
 * reaching the kubelet (logs, exec). The images are the test bed's own (no registry): the probe program serves
 * and fetches HTTP and resolves names.
 */
describe("the test bed's real node", () => {
  let ns: string;
  const node = () => {
    const n = testbed().node;
    if (!n) throw new Error("the test bed has no real node");
    return n;
  };
  const probePod = (name: string, args: string[], labels: Record<string, string> = {}) =>
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: ns, labels: { app: name, ...labels } },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: "probe",
            image: node().images.probe,
            imagePullPolicy: "Never",
            args,
            ports: [{ containerPort: 8080 }],
            readinessProbe:
              args[0] === "serve" ? { httpGet: { path: "/", port: 8080 }, periodSeconds: 1 } : undefined,
          },
        ],
      },
    });
  const exec = async (pod: string, args: string[]) =>
    await kubectl(["exec", "-n", ns, pod, "--", "/probe", ...args]);

  beforeAll(async () => {
    ns = await createNamespace("node", { realNode: true });
    await kubectl(["apply", "-f", "-"], probePod("web", ["serve", ":8080"]));
    await kubectl(["apply", "-f", "-"], probePod("client", ["sleep"]));
    await kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "web", namespace: ns },
        spec: { selector: { app: "web" }, ports: [{ port: 80, targetPort: 8080 }] },
      }),
    );
  });
  afterAll(async () => {
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("is Ready beside the kwok node, which is tainted; the node's pods run there", async () => {
    const nodes = JSON.parse(await kubectl(["get", "nodes", "-o", "json"])) as {
      items: {
        metadata: { name: string };
        spec: { taints?: { key: string; effect: string }[] };
        status: { nodeInfo: { kubeletVersion: string }; addresses: { type: string; address: string }[] };
      }[];
    };
    const real = nodes.items.find((n) => n.metadata.name === REAL_NODE);
    const fake = nodes.items.find((n) => n.metadata.name === FAKE_NODE);
    expect(real?.status.nodeInfo.kubeletVersion).toMatch(/^v1\.3[4-9]\.\d+$/);
    expect(real?.status.addresses).toContainEqual({ type: "InternalIP", address: node().nodeIp });
    expect(real?.spec.taints ?? []).toEqual([]);
    expect(fake?.spec.taints).toContainEqual(
      expect.objectContaining({ key: KWOK_TAINT.key, effect: "NoSchedule" }),
    );
    await kubectl(["wait", "-n", ns, "--for=condition=Ready", "pod/web", "pod/client", "--timeout=90s"]);
    const where = await kubectl(["get", "pods", "-n", ns, "-o", "jsonpath={.items[*].spec.nodeName}"]);
    expect(where.split(" ")).toEqual([REAL_NODE, REAL_NODE]);
    const dns = await kubectl([
      "get",
      "pods",
      "-n",
      "kube-system",
      "-l",
      "k8s-app=kube-dns",
      "-o",
      "jsonpath={.items[*].spec.nodeName}",
    ]);
    expect(dns).toBe(REAL_NODE);
  });

  it("gives pods the cluster DNS only, which resolves Services by name", async () => {
    const resolv = await exec("client", ["cat", "/etc/resolv.conf"]);
    expect(resolv.match(/^nameserver .*/gm)).toEqual([`nameserver ${node().dnsServiceIp}`]);
    expect(resolv).toContain(`search ${ns}.svc.cluster.local svc.cluster.local cluster.local`);
    const svcIp = (
      await kubectl(["get", "service", "-n", ns, "web", "-o", "jsonpath={.spec.clusterIP}"])
    ).trim();
    expect((await exec("client", ["lookup", `web.${ns}.svc.cluster.local`])).trim()).toBe(svcIp);
    expect((await exec("client", ["lookup", "web"])).trim()).toBe(svcIp); // the pod's search path
    expect((await exec("client", ["lookup", "kubernetes.default"])).trim()).toBe(node().kubernetesServiceIp);
    // no resolver beyond the cluster's: an outside name does not resolve
    await expect(exec("client", ["lookup", "example.com"])).rejects.toThrow();
  });

  it("lets a pod reach a Service by its DNS name", async () => {
    const out = await exec("client", ["get", `http://web.${ns}.svc.cluster.local/`]);
    expect(out).toBe("200\nhello from web\n");
    expect(await exec("client", ["get", "http://web/"])).toBe("200\nhello from web\n");
  });

  it("lets a pod reach the API server through the kubernetes Service with its service-account token", async () => {
    const sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    const out = await exec("client", [
      "get",
      "https://kubernetes.default.svc/api",
      `${sa}/token`,
      `${sa}/ca.crt`,
    ]);
    const [status, ...body] = out.split("\n");
    expect(status).toBe("200");
    expect(JSON.parse(body.join("\n"))).toMatchObject({ kind: "APIVersions", versions: ["v1"] });
    // and the token is a real identity, which RBAC confines: the default service account may not list pods
    const denied = await exec("client", [
      "get",
      `https://kubernetes.default.svc/api/v1/namespaces/${ns}/pods`,
      `${sa}/token`,
      `${sa}/ca.crt`,
    ]);
    expect(denied.split("\n")[0]).toBe("403");
  });

  it("serves kubectl logs and exec (the API server reaches the kubelet with its client certificate)", async () => {
    await exec("client", ["get", "http://web/hello"]);
    const logs = await until("the request in web's log", async () => {
      const l = await kubectl(["logs", "-n", ns, "web"]);
      return l.includes("GET /hello") && l;
    });
    expect(logs).toContain("serving on :8080");
    // exec runs in the container, through the kubelet: the pod's own hostname file
    expect((await exec("web", ["cat", "/etc/hostname"])).trim()).toBe("web");
  });

  it("answers a ClusterIP and a pod IP from the host, through routes to the node's veth", async () => {
    const svcIp = (
      await kubectl(["get", "service", "-n", ns, "web", "-o", "jsonpath={.spec.clusterIP}"])
    ).trim();
    const podIp = (await kubectl(["get", "pod", "-n", ns, "web", "-o", "jsonpath={.status.podIP}"])).trim();
    const res = await fetch(`http://${svcIp}/`, { signal: AbortSignal.timeout(5_000) });
    expect(await res.text()).toBe("hello from web\n");
    const direct = await fetch(`http://${podIp}:8080/`, { signal: AbortSignal.timeout(5_000) });
    expect(await direct.text()).toBe("hello from web\n");
    // both ranges are routed to the veth, so no ClusterIP ever follows the default route off the machine
    for (const ip of [svcIp, podIp]) {
      const { stdout } = await run("ip", ["route", "get", ip]);
      expect(stdout).toContain(`via ${node().nodeIp} dev lvtb`);
    }
  });

  it("routes nothing off the test bed from the node: its link, pods and Service range only", async () => {
    const n = node();
    const slot = Number(n.hostIp.split(".")[2]);
    const own = networkFor(slot);
    expect(own.hostIp).toBe(n.hostIp);
    const inNode = (args: string[]) => run("nsenter", ["-t", String(n.holderPid), "-n", "ip", ...args]);
    const routes = (await inNode(["route", "show"])).stdout
      .split("\n")
      .map((l) => l.trim().split(" ")[0])
      .filter(Boolean)
      .sort();
    expect(routes).toEqual([n.podCidr, n.serviceCidr, own.linkCidr].sort());
    // the host forwards what it has no route for to its default route: a kwok pod's IP (a ClusterIP with
    // kwok endpoints is DNATed to one on the node), another slot's Service range, or any other address must
    // find no route on the node
    const other = networkFor((slot + 1) % MAX_SLOTS);
    for (const ip of [
      "10.244.3.3",
      other.kubernetesServiceIp,
      other.podCidr.replace(/0\/24$/, "7"),
      "192.0.2.1",
    ])
      await expect(inNode(["route", "get", ip]), ip).rejects.toThrow(/unreachable/i);
  });

  it("runs a new pod to Ready in seconds", async () => {
    const started = Date.now();
    await kubectl(["apply", "-f", "-"], probePod("quick", ["serve", ":8080"]));
    await kubectl(["wait", "-n", ns, "--for=condition=Ready", "pod/quick", "--timeout=60s"]);
    const ms = Date.now() - started;
    console.log(`[testbed-node] pod create to Ready: ${ms} ms`);
    expect(ms).toBeLessThan(60_000);
  });
});
