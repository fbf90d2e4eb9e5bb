import { request as httpsRequest, type RequestOptions } from "node:https";
import { KubeConfig } from "@kubernetes/client-node";
import { CRD_NAME, livySessionCrd } from "../../src/api/crd.ts";
import { API_VERSION, GROUP, PLURAL, VERSION } from "../../src/api/livysession.ts";

/**
 * Raw API requests for the CRD admission tests. @kubernetes/client-node loads the kubeconfig and supplies
 * the TLS client credentials; the bodies go out exactly as given (its typed clients would re-serialize
 * them), because these tests compare what the API server decides on a body with what zod decides on it.
 */
export interface ApiResponse {
  status: number;
  body: Record<string, unknown>;
}

export class Api {
  private readonly kc: KubeConfig;
  private readonly server: URL;

  constructor(kubeconfigPath: string) {
    this.kc = new KubeConfig();
    this.kc.loadFromFile(kubeconfigPath);
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error(`no current cluster in ${kubeconfigPath}`);
    this.server = new URL(cluster.server);
  }

  async request(
    method: string,
    path: string,
    body?: unknown,
    contentType = "application/json",
    accept = "application/json",
  ): Promise<ApiResponse> {
    const opts: RequestOptions = {
      method,
      hostname: this.server.hostname,
      port: this.server.port,
      path,
      headers: { Accept: accept, ...(body !== undefined ? { "Content-Type": contentType } : {}) },
      timeout: 30_000,
    };
    await this.kc.applyToHTTPSOptions(opts);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return await new Promise<ApiResponse>((resolve, reject) => {
      const req = httpsRequest(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          try {
            resolve({
              status: res.statusCode ?? 0,
              body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
            });
          } catch {
            reject(new Error(`${method} ${path}: HTTP ${res.statusCode}, not JSON: ${text.slice(0, 500)}`));
          }
        });
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  /** Server-side apply of the generated CRD, then wait until it is Established and its resource is served. */
  async installCrd(): Promise<void> {
    const apply = await this.request(
      "PATCH",
      `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}?fieldManager=livy-operator-tests&force=true`,
      livySessionCrd(),
      "application/apply-patch+yaml",
    );
    if (apply.status !== 200 && apply.status !== 201) {
      throw new Error(`applying the CRD: HTTP ${apply.status}: ${String(apply.body.message)}`);
    }
    await until("CRD Established", async () => {
      const r = await this.request(
        "GET",
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`,
      );
      const conditions = ((r.body.status as { conditions?: { type: string; status: string }[] } | undefined)
        ?.conditions ?? []) as { type: string; status: string }[];
      return conditions.some((c) => c.type === "Established" && c.status === "True");
    });
    await until("livysessions served", async () => {
      const r = await this.request("GET", `/apis/${GROUP}/${VERSION}`);
      const resources = (r.body.resources ?? []) as { name: string }[];
      return r.status === 200 && resources.some((x) => x.name === PLURAL);
    });
  }

  async createNamespace(prefix: string): Promise<string> {
    const name = `${prefix}-${Date.now().toString(36)}`;
    const r = await this.request("POST", "/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name },
    });
    if (r.status !== 201)
      throw new Error(`creating namespace ${name}: HTTP ${r.status}: ${String(r.body.message)}`);
    return name;
  }

  async deleteNamespace(name: string): Promise<void> {
    await this.request("DELETE", `/api/v1/namespaces/${name}`);
  }

  sessionsPath(namespace: string, name?: string): string {
    return `/apis/${API_VERSION}/namespaces/${namespace}/${PLURAL}${name ? `/${name}` : ""}`;
  }

  /** POST a LivySession; `dryRun` runs admission (defaulting, validation) without storing anything. */
  async createSession(namespace: string, obj: unknown, dryRun = false): Promise<ApiResponse> {
    return await this.request("POST", `${this.sessionsPath(namespace)}${dryRun ? "?dryRun=All" : ""}`, obj);
  }
}

export async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await fn()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}
