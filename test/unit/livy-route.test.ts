import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { LivyClient } from "../../src/livy/client.ts";
import {
  apiServerRoute,
  defaultRoute,
  GATEWAY_API_PATH,
  gatewayThroughApiServer,
  KubeClient,
  serviceProxyPath,
} from "../../src/livy/kube.ts";

/**
 * How the client picks its way to a LivySession (the integration suite gateway-apiserver.test.ts takes it
 * through the real API server and gateway): the discovery answer decides, and the API server route carries
 * the kubeconfig's own credentials to the gateway's path, session 0.
 */
describe("routes to a LivySession", () => {
  let server: Server | undefined;
  let kube: KubeClient | undefined;
  const seen: Array<{ method: string; url: string; authorization: string | undefined }> = [];
  afterEach(async () => {
    await kube?.close();
    await new Promise((r) => server?.close(r));
    seen.length = 0;
  });

  /** An HTTP server answering discovery with `discovery`, and anything else as Livy would. */
  async function serve(discovery: number): Promise<KubeClient> {
    server = createServer((req: IncomingMessage, res) => {
      req.resume();
      seen.push({ method: req.method ?? "", url: req.url ?? "", authorization: req.headers.authorization });
      const json = (status: number, body: unknown) =>
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
      if (req.url === GATEWAY_API_PATH)
        return discovery === 200
          ? json(200, { kind: "APIResourceList", groupVersion: "livy.dev/gateway", resources: [] })
          : json(discovery, {
              kind: "Status",
              code: discovery,
              reason: "x",
              message: `answered ${discovery}`,
            });
      json(200, { id: 0, state: "idle", kind: "pyspark", log: [] });
    });
    await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        {
          name: "c",
          server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          skipTLSVerify: true,
        },
      ],
      users: [{ name: "u", token: "kube-token" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    kube = await KubeClient.create(kc);
    return kube;
  }

  const endpoint = { namespace: "data", name: "nb", serverURL: "http://livy-nb.data.svc:8998", sessionId: 7 };

  it("goes through the API server when it serves the gateway, with the kubeconfig's token, as session 0", async () => {
    const k = await serve(200);
    expect(await gatewayThroughApiServer(k)).toBe(true);
    const route = await defaultRoute(k)(endpoint);
    expect(route.baseUrl).toBe(`${k.server}/apis/livy.dev/gateway/namespaces/data/livysessions/nb/proxy`);
    expect(route.sessionId).toBe(0);
    expect(route.client?.pipelining).toBe(1);
    const client = new LivyClient({ ...route.client, baseUrl: route.baseUrl });
    try {
      await client.getSession(0);
    } finally {
      await client.close();
    }
    expect(seen.at(-1)).toEqual({
      method: "GET",
      url: "/apis/livy.dev/gateway/namespaces/data/livysessions/nb/proxy/sessions/0",
      authorization: "Bearer kube-token",
    });
  });

  it("takes the service proxy (outside a pod) where the API server does not serve the gateway (404)", async () => {
    const k = await serve(404);
    expect(await gatewayThroughApiServer(k)).toBe(false);
    const route = await defaultRoute(k)(endpoint);
    expect(route.baseUrl).toBe(k.server + serviceProxyPath(endpoint.serverURL));
    expect(route.sessionId).toBeUndefined();
    // asked once per client
    await defaultRoute(k)(endpoint);
    expect(seen.filter((s) => s.url === GATEWAY_API_PATH)).toHaveLength(1);
  });

  it("says so when the gateway's APIService is registered but not answering (503), rather than guess", async () => {
    const k = await serve(503);
    const err = await gatewayThroughApiServer(k).catch((e: unknown) => e);
    expect(String((err as Error).message)).toContain("gateway.livy.dev is registered but not available");
  });

  it("apiServerRoute names the path of any LivySession, escaped", async () => {
    const k = await serve(200);
    const r = await apiServerRoute(k)({ ...endpoint, namespace: "team-a", name: "ws-1" });
    expect(r.baseUrl.endsWith("/apis/livy.dev/gateway/namespaces/team-a/livysessions/ws-1/proxy")).toBe(true);
  });
});

describe("serviceProxyPath: a Service's cluster address as the API server's service proxy path", () => {
  it("maps the operator's serverURL form", () => {
    expect(serviceProxyPath("http://livy-pyspark-minimal.default.svc:8998")).toBe(
      "/api/v1/namespaces/default/services/http:livy-pyspark-minimal:8998/proxy",
    );
    expect(serviceProxyPath("https://livy-x.data-prep.svc.cluster.local:8443/")).toBe(
      "/api/v1/namespaces/data-prep/services/https:livy-x:8443/proxy",
    );
  });

  it("keeps a path prefix and takes the scheme's default port", () => {
    expect(serviceProxyPath("http://gw.ns.svc/livy/")).toBe(
      "/api/v1/namespaces/ns/services/http:gw:80/proxy/livy",
    );
  });

  it("leaves anything that names no Service to the direct route", () => {
    for (const url of [
      "http://127.0.0.1:8998",
      "http://localhost:8998",
      "http://livy.example.com:8998",
      "http://a.b.c.svc:8998",
      "ftp://livy-x.ns.svc:21",
      "not a url",
    ])
      expect(serviceProxyPath(url), url).toBeNull();
  });
});
