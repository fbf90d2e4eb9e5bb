import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { connectLivySession, gatewayThroughApiServer } from "../../src/livy/kube.ts";
import { testbed } from "../testbed/context.ts";
import { REPO_ROOT } from "../testbed/paths.ts";
import { freePort } from "../testbed/process.ts";
import { type GatewayProcess, serviceAccountToken, startGateway } from "./gateway-harness.ts";
import {
  applySession,
  createNamespace,
  installCrd,
  isReady,
  kube,
  kubectl,
  kubectlEnv,
  type OperatorProcess,
  phaseIs,
  startOperator,
  until,
  waitFor,
} from "./harness.ts";

const run = promisify(execFile);
const APISERVICE = "/apis/apiregistration.k8s.io/v1/apiservices/gateway.livy.dev";

/**
 * The gateway behind the real API server's aggregation layer: a caller with only a kubeconfig (here the
 * test bed's admin with a client certificate, and ServiceAccount tokens) reaches a LivySession at
 * <API server>/apis/livy.dev/gateway/namespaces/<ns>/livysessions/<name>/proxy/..., the API server checks
 * RBAC on livysessions/proxy and forwards the caller's identity in front-proxy headers, which the
 * gateway trusts only from a client certificate of the front proxy's CA.
 */
describe("gateway through the API server (aggregation layer)", () => {
  // where the gateway's aggregation port listens (see the Service made in beforeAll)
  const hostIp = testbed().node?.hostIp;
  const gwHost = hostIp ?? "127.0.0.1";
  let op: OperatorProcess;
  let gate: GatewayProcess;
  let ns: string;
  let port: number;
  let runner: string;
  let nobody: string;
  const base = () => `/apis/livy.dev/gateway/namespaces/${ns}/livysessions`;
  const server = () => {
    const cfg = parse(readFileSync(testbed().kubeconfig, "utf8")) as {
      clusters: Array<{ cluster: { server: string } }>;
    };
    return cfg.clusters[0]?.cluster.server ?? "";
  };
  /** A request to the API server with a ServiceAccount token (kubectl's client-certificate user is the admin). */
  const asToken = async (token: string, method: string, path: string, body?: unknown) => {
    const ca = readFileSync(`${testbed().stateDir}/pki/ca.crt`);
    return await new Promise<{ status: number; json: unknown; text: string }>((resolve, reject) => {
      const req = httpsRequest(
        `${server()}${path}`,
        {
          method,
          ca,
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => {
            text += c.toString();
          });
          res.on("end", () => {
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, json, text });
          });
        },
      );
      req.on("error", reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  };

  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("gwagg");
    op = await startOperator({ name: "gateway-agg", args: ["--namespaces", ns] });
    runner = await serviceAccountToken(ns, "runner", ["get", "create", "delete"]);
    nobody = await serviceAccountToken(ns, "nobody");
    port = await freePort();
    const k = await kube();
    // The gateway runs on this machine, not in a pod. The test bed's API server routes to an APIService's
    // endpoints, not its ClusterIP (--enable-aggregator-routing: it lives outside the real node's network),
    // so the Service has no selector and its Endpoints name the host's address on the node's network (the
    // API server's own; an endpoint may not be loopback). Without a real node: by name to localhost.
    if (hostIp) {
      await k.create(`/api/v1/namespaces/${ns}/services`, {
        metadata: { name: "gw" },
        spec: { ports: [{ name: "https", port, targetPort: port }] },
      });
      await k.create(`/api/v1/namespaces/${ns}/endpoints`, {
        metadata: { name: "gw" },
        subsets: [{ addresses: [{ ip: hostIp }], ports: [{ name: "https", port }] }],
      });
    } else {
      await k.create(`/api/v1/namespaces/${ns}/services`, {
        metadata: { name: "gw" },
        spec: { type: "ExternalName", externalName: "localhost", ports: [{ name: "https", port }] },
      });
    }
    await k.create("/apis/apiregistration.k8s.io/v1/apiservices", {
      metadata: { name: "gateway.livy.dev" },
      spec: {
        group: "livy.dev",
        version: "gateway",
        groupPriorityMinimum: 1000,
        versionPriority: 1,
        service: { namespace: ns, name: "gw", port },
      },
    });
    gate = await startGateway({
      name: "agg",
      args: [
        "--apiserver-port",
        String(port),
        "--apiserver-host",
        gwHost,
        "--apiserver-tls-secret",
        `${ns}/gw-serving`,
        "--apiserver-dns-names",
        `gw.${ns}.svc`,
        "--api-service",
        "gateway.livy.dev",
      ],
    });
    await until(
      "the APIService Available",
      async () => {
        const s = await k.get<{ status?: { conditions?: Array<{ type: string; status: string }> } }>(
          APISERVICE,
        );
        return s.status?.conditions?.some((c) => c.type === "Available" && c.status === "True");
      },
      60_000,
    );
    await applySession(ns, "nb", { kind: "pyspark", idleTimeout: "1h" });
    await waitFor(ns, "nb", isReady, "Ready");
  });

  afterAll(async () => {
    // an APIService nobody answers would fail discovery (and namespace deletion) for everyone after us
    await (await kube()).delete(APISERVICE).catch(() => false);
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
      () => "",
    );
    expect(await gate?.stop()).toBe(0);
    await op?.stop();
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("is discoverable, and LivySessions stay served by their own version", async () => {
    expect(await kubectl(["api-versions"])).toContain("livy.dev/gateway");
    expect(JSON.parse(await kubectl(["get", "--raw", "/apis/livy.dev/gateway"]))).toEqual({
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: "livy.dev/gateway",
      resources: [],
    });
    expect(await kubectl(["get", "livysessions", "-n", ns, "-o", "name"])).toContain(
      "livysession.livy.dev/nb",
    );
    // the certificate it made is in the APIService and in a Secret its replicas share
    const svc = await (await kube()).get<{ metadata: { uid: string }; spec: { caBundle?: string } }>(
      APISERVICE,
    );
    expect(svc.spec.caBundle).toBeTruthy();
    // ...owned by the APIService, so that the garbage collector deletes it with the release
    const secret = await (await kube()).get<{
      data: Record<string, string>;
      metadata: { ownerReferences?: Array<{ kind: string; name: string; uid: string }> };
    }>(`/api/v1/namespaces/${ns}/secrets/gw-serving`);
    expect(secret.data["tls.crt"]).toBe(svc.spec.caBundle);
    expect(secret.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: "APIService", name: "gateway.livy.dev", uid: svc.metadata.uid }),
    ]);
  });

  it("serves a kubeconfig's client-certificate user, whose identity the API server forwards", async () => {
    const s = JSON.parse(await kubectl(["get", "--raw", `${base()}/nb/proxy/sessions/0`])) as Record<
      string,
      unknown
    >;
    expect(s).toMatchObject({ id: 0, name: "nb", state: "idle" });
    const posted = JSON.parse(
      await kubectl(
        ["create", "--raw", `${base()}/nb/proxy/sessions/0/statements`, "-f", "-"],
        JSON.stringify({ code: "6 * 7" }),
      ),
    ) as { id: number; code: string };
    expect(posted.code).toBe("6 * 7");
    const done = await until(
      "the statement's result",
      async () => {
        const st = JSON.parse(
          await kubectl(["get", "--raw", `${base()}/nb/proxy/sessions/0/statements/${posted.id}`]),
        ) as {
          state: string;
          output?: { data?: Record<string, string> };
        };
        return st.state === "available" ? st : null;
      },
      30_000,
    );
    expect(done.output?.data?.["text/plain"]).toBe("42");
  });

  it("lets RBAC on livysessions/proxy decide, in the API server and in the gateway", async () => {
    const ok = await asToken(runner, "POST", `${base()}/nb/proxy/sessions/0/statements`, { code: "1 + 1" });
    expect(ok.status).toBe(201);
    expect(ok.json).toMatchObject({ code: "1 + 1" });
    // Location points back through the API server
    const denied = await asToken(nobody, "POST", `${base()}/nb/proxy/sessions/0/statements`, { code: "1" });
    expect(denied.status).toBe(403);
    // refused by the API server itself, in its words
    expect((denied.json as { message: string }).message).toContain(
      `cannot create resource "livysessions/proxy" in API group "livy.dev"`,
    );
    // a path without the proxy subresource is another authorization: the gateway does not serve it
    const bare = await asToken(runner, "GET", `${base()}/nb/sessions/0`);
    expect([403, 404]).toContain(bare.status);
  });

  it("wakes a parked session through the API server and answers with the result", async () => {
    await applySession(ns, "sleepy", { kind: "pyspark", idleTimeout: "1s" });
    await waitFor(ns, "sleepy", phaseIs("Idle"), "Idle", 30_000);
    const posted = await asToken(runner, "POST", `${base()}/sleepy/proxy/sessions/0/statements`, {
      code: "2 ** 10",
    });
    expect(posted.status).toBe(201);
    const id = (posted.json as { id: number }).id;
    const done = await until(
      "the result",
      async () => {
        const r = await asToken(runner, "GET", `${base()}/sleepy/proxy/sessions/0/statements/${id}`);
        const st = r.json as { state: string; output?: { data?: Record<string, string> } };
        return st.state === "available" ? st : null;
      },
      30_000,
    );
    expect(done.output?.data?.["text/plain"]).toBe("1024");
  });

  it("refuses the aggregation port to anything but the front proxy", async () => {
    const res = await run(
      "curl",
      [
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        `https://${gwHost}:${port}${base()}/nb/proxy/sessions/0`,
      ],
      {
        env: kubectlEnv(),
      },
    ).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? "" }));
    expect(res.stdout).toBe("401");
    // forged identity headers without the front proxy's certificate change nothing
    const forged = await run(
      "curl",
      [
        "-sk",
        "-H",
        "X-Remote-User: admin",
        "-H",
        "X-Remote-Group: system:masters",
        `https://${gwHost}:${port}${base()}/nb/proxy/sessions/0`,
      ],
      { env: kubectlEnv() },
    ).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? "" }));
    expect(forged.stdout).toContain("Unauthorized");
  });

  /** Requests the gateway took from the front proxy (the API server), by its metrics. */
  const throughApiServer = async () => {
    const m = /livy_gateway_reviews_total\{kind="front-proxy",result="ok"\} (\d+)/.exec(await gate.metrics());
    return Number(m?.[1] ?? 0);
  };

  it("livyctl run --livysession, given only a kubeconfig, goes through the API server to the gateway", async () => {
    const before = await throughApiServer();
    const res = await run(
      process.execPath,
      [
        `${REPO_ROOT}/src/cli/main.ts`,
        "--kubeconfig",
        testbed().kubeconfig,
        "run",
        "--livysession",
        `${ns}/nb`,
        "--wait",
        "2m",
        "2 ** 10",
      ],
      { env: { ...process.env, LIVY_URL: "", LIVY_TOKEN: "" }, timeout: 150_000 },
    );
    expect(res.stdout.trim()).toBe("1024");
    expect(await throughApiServer()).toBeGreaterThan(before);
  });

  it("the TypeScript client's connectLivySession takes the same path by default (session 0)", async () => {
    const k = await kube();
    expect(await gatewayThroughApiServer(k)).toBe(true);
    const before = await throughApiServer();
    const { endpoint, client, session } = await connectLivySession(k, ns, "nb", { timeoutMs: 60_000 });
    try {
      expect(session.id).toBe(0);
      expect(endpoint.name).toBe("nb");
      const result = await session.run("2 ** 10", { timeoutMs: 60_000 });
      expect(result.text).toBe("1024");
    } finally {
      await client.close();
    }
    expect(await throughApiServer()).toBeGreaterThan(before);
  });

  it("serves the PyPI livy client through the API server with a Bearer token and the cluster's CA", async () => {
    const python = testbed().python;
    if (!python) throw new Error("the test bed has no python venv with the PyPI livy client");
    const script = [
      "import sys",
      "from livy import LivySession",
      "url, token, ca = sys.argv[1], sys.argv[2], sys.argv[3]",
      "def bearer(r):",
      "    r.headers['Authorization'] = 'Bearer ' + token",
      "    return r",
      "with LivySession.create(url, auth=bearer, verify=ca, echo=False) as s:",
      "    print('RESULT', s.run('2 ** 10').text)",
      "    print('SESSION', s.session_id)",
    ].join("\n");
    const before = await throughApiServer();
    const { stdout } = await run(
      python,
      ["-c", script, `${server()}${base()}/nb/proxy`, runner, `${testbed().stateDir}/pki/ca.crt`],
      { timeout: 150_000 },
    );
    expect(stdout).toContain("RESULT 1024");
    expect(stdout).toContain("SESSION 0");
    expect(await throughApiServer()).toBeGreaterThan(before);
  });
});
