import { existsSync, readFileSync } from "node:fs";
import type { RequestOptions } from "node:https";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join } from "node:path";

/**
 * yaml, loaded when a kubeconfig file is read: a pod (the operator, the gateway) reads its service
 * account instead and never needs it (1.3 MiB of RSS in a bare Node process, bench/RESULTS.md 17.1).
 */
const parseYaml = (text: string): unknown =>
  (createRequire(import.meta.url)("yaml") as typeof import("yaml")).parse(text);

/**
 * The kubeconfig, read as kubectl reads it: $KUBECONFIG (several files merged, the first to set a value
 * wins), else ~/.kube/config, else the pod's service account. Written here rather than taken from
 * @kubernetes/client-node because importing that library costs the process about 83 MiB of RSS (its
 * generated API models load with its config module: 41 → 124 MiB for a bare Node process, measured in
 * bench/RESULTS.md section 3) — more than half of the operator's memory goal at 1000 LivySessions — while
 * what the operator needs of it is this file's few fields. Credentials from a plugin (`exec`,
 * `auth-provider`) are the library's job still: for those users it is imported on first use, and does
 * the whole authentication.
 */

export interface KubeCluster {
  name: string;
  server: string;
  skipTLSVerify?: boolean;
  caData?: string;
  caFile?: string;
  tlsServerName?: string;
}

export interface KubeUser {
  name: string;
  token?: string;
  tokenFile?: string;
  certData?: string;
  certFile?: string;
  keyData?: string;
  keyFile?: string;
  username?: string;
  password?: string;
  /** exec or auth-provider: credentials come from a plugin (done by @kubernetes/client-node). */
  plugin?: boolean;
}

export interface KubeContext {
  name: string;
  cluster: string;
  user: string;
  namespace?: string;
}

/** What KubeClient needs of a kubeconfig (this file's KubeConfig, or @kubernetes/client-node's). */
export interface KubeConfigLike {
  getCurrentCluster(): { server: string; skipTLSVerify?: boolean } | null;
  getCurrentContext(): string;
  applyToHTTPSOptions(opts: RequestOptions): Promise<void>;
}

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

type Raw = Record<string, unknown>;
const rec = (v: unknown): Raw => (v && typeof v === "object" && !Array.isArray(v) ? (v as Raw) : {});
const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const named = (v: unknown): Raw[] => (Array.isArray(v) ? v.map(rec).filter((e) => str(e.name)) : []);

export class KubeConfig implements KubeConfigLike {
  clusters: KubeCluster[] = [];
  users: KubeUser[] = [];
  contexts: KubeContext[] = [];
  currentContext = "";
  /** Loads the same source into @kubernetes/client-node's KubeConfig, for plugin credentials. */
  private loadInto: ((kc: { loadFromFile(p: string): void; loadFromDefault(): void }) => void) | undefined;
  private delegate: Promise<KubeConfigLike> | undefined;

  loadFromFile(path: string): void {
    this.merge([path]);
    this.loadInto = (kc) => kc.loadFromFile(path);
  }

  /** $KUBECONFIG, ~/.kube/config, or in a pod its service account; nothing found leaves it empty. */
  loadFromDefault(serviceAccountDir = SA_DIR): void {
    this.loadInto = (kc) => kc.loadFromDefault();
    const env = process.env.KUBECONFIG;
    if (env) {
      // missing files are skipped, as kubectl does; none there at all is an error (ENOENT), not a fallback
      const named = env.split(delimiter).filter((f) => f);
      const files = named.filter((f) => existsSync(f));
      if (named.length) {
        this.merge(files.length ? files : named.slice(0, 1));
        return;
      }
    }
    const home = join(process.env.HOME || homedir(), ".kube", "config");
    if (existsSync(home)) {
      this.merge([home]);
      return;
    }
    const host = process.env.KUBERNETES_SERVICE_HOST;
    const port = process.env.KUBERNETES_SERVICE_PORT;
    const sa = serviceAccountDir;
    if (host && port && existsSync(join(sa, "token"))) {
      const h = host.includes(":") ? `[${host}]` : host;
      this.clusters = [{ name: "inCluster", server: `https://${h}:${port}`, caFile: join(sa, "ca.crt") }];
      // the token rotates: read from its file at every refresh
      this.users = [{ name: "inClusterUser", tokenFile: join(sa, "token") }];
      let namespace: string | undefined;
      try {
        namespace = readFileSync(join(sa, "namespace"), "utf8").trim() || undefined;
      } catch {
        // no namespace file: the default
      }
      this.contexts = [
        {
          name: "inClusterContext",
          cluster: "inCluster",
          user: "inClusterUser",
          ...(namespace ? { namespace } : {}),
        },
      ];
      this.currentContext = "inClusterContext";
    }
  }

  /** kubectl's merge: entries by name and current-context, the first file to set one wins. */
  private merge(files: string[]): void {
    const seen = { c: new Set<string>(), u: new Set<string>(), x: new Set<string>() };
    for (const file of files) {
      const doc = rec(parseYaml(readFileSync(file, "utf8")));
      // relative paths in a kubeconfig are relative to the file that names them
      const abs = (p: unknown) => {
        const s = str(p);
        return s === undefined ? undefined : isAbsolute(s) ? s : join(dirname(file), s);
      };
      for (const e of named(doc.clusters)) {
        const name = e.name as string;
        if (seen.c.has(name)) continue;
        seen.c.add(name);
        const c = rec(e.cluster);
        const cluster: KubeCluster = { name, server: str(c.server) ?? "" };
        if (c["insecure-skip-tls-verify"] === true) cluster.skipTLSVerify = true;
        const caData = str(c["certificate-authority-data"]);
        const caFile = abs(c["certificate-authority"]);
        const tlsServerName = str(c["tls-server-name"]);
        if (caData) cluster.caData = caData;
        if (caFile) cluster.caFile = caFile;
        if (tlsServerName) cluster.tlsServerName = tlsServerName;
        this.clusters.push(cluster);
      }
      for (const e of named(doc.users)) {
        const name = e.name as string;
        if (seen.u.has(name)) continue;
        seen.u.add(name);
        const u = rec(e.user);
        const user: KubeUser = { name };
        const set = (k: keyof KubeUser, v: string | undefined) => {
          if (v !== undefined) (user as unknown as Raw)[k] = v;
        };
        set("token", str(u.token));
        set("tokenFile", abs(u.tokenFile));
        set("certData", str(u["client-certificate-data"]));
        set("certFile", abs(u["client-certificate"]));
        set("keyData", str(u["client-key-data"]));
        set("keyFile", abs(u["client-key"]));
        set("username", str(u.username));
        set("password", str(u.password));
        if (u.exec || u["auth-provider"]) user.plugin = true;
        this.users.push(user);
      }
      for (const e of named(doc.contexts)) {
        const name = e.name as string;
        if (seen.x.has(name)) continue;
        seen.x.add(name);
        const x = rec(e.context);
        const ctx: KubeContext = { name, cluster: str(x.cluster) ?? "", user: str(x.user) ?? "" };
        const namespace = str(x.namespace);
        if (namespace) ctx.namespace = namespace;
        this.contexts.push(ctx);
      }
      if (!this.currentContext) this.currentContext = str(doc["current-context"]) ?? "";
    }
  }

  getContexts(): KubeContext[] {
    return this.contexts;
  }

  getContextObject(name: string): KubeContext | null {
    return this.contexts.find((c) => c.name === name) ?? null;
  }

  getCurrentContext(): string {
    return this.currentContext;
  }

  setCurrentContext(name: string): void {
    this.currentContext = name;
    this.delegate = undefined;
  }

  getCurrentCluster(): KubeCluster | null {
    const ctx = this.getContextObject(this.currentContext);
    return ctx ? (this.clusters.find((c) => c.name === ctx.cluster) ?? null) : null;
  }

  getCurrentUser(): KubeUser | null {
    const ctx = this.getContextObject(this.currentContext);
    return ctx ? (this.users.find((u) => u.name === ctx.user) ?? null) : null;
  }

  /**
   * TLS material and credentials as Node's https options (ca, cert, key, servername, headers, auth), read
   * anew at each call: files (a rotated service-account token, renewed certificates) are re-read.
   */
  async applyToHTTPSOptions(opts: RequestOptions): Promise<void> {
    const user = this.getCurrentUser();
    if (user?.plugin) return (await this.plugin()).applyToHTTPSOptions(opts);
    const cluster = this.getCurrentCluster();
    const file = (data: string | undefined, path: string | undefined): Buffer | undefined =>
      data !== undefined ? Buffer.from(data, "base64") : path !== undefined ? readFileSync(path) : undefined;
    const ca = file(cluster?.caData, cluster?.caFile);
    if (ca) opts.ca = ca;
    if (cluster?.tlsServerName) opts.servername = cluster.tlsServerName;
    if (!user) return;
    const cert = file(user.certData, user.certFile);
    const key = file(user.keyData, user.keyFile);
    if (cert) opts.cert = cert;
    if (key) opts.key = key;
    const token = user.token ?? (user.tokenFile ? readFileSync(user.tokenFile, "utf8").trim() : undefined);
    if (token) opts.headers = { ...opts.headers, Authorization: `Bearer ${token}` };
    if (user.username !== undefined && user.password !== undefined)
      opts.auth = `${user.username}:${user.password}`;
  }

  /** @kubernetes/client-node's KubeConfig over the same source and context, imported on first use. */
  private plugin(): Promise<KubeConfigLike> {
    this.delegate ??= (async () => {
      const { KubeConfig: Full } = await import("@kubernetes/client-node");
      const kc = new Full();
      this.loadInto?.(kc);
      if (this.currentContext) kc.setCurrentContext(this.currentContext);
      return kc;
    })();
    return this.delegate;
  }
}
