import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { KubeConfig, loadKubeConfig } from "../../src/kube/client.ts";

describe("loadKubeConfig", () => {
  const saved = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG };
  afterEach(() => {
    process.env.HOME = saved.HOME;
    if (saved.KUBECONFIG === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = saved.KUBECONFIG;
  });

  it("refuses client-node's silent fallback to http://localhost:8080 with a message saying what to do", () => {
    process.env.HOME = mkdtempSync(join(tmpdir(), "home-"));
    delete process.env.KUBECONFIG;
    expect(() => loadKubeConfig()).toThrow(/no usable kubeconfig: set KUBECONFIG, pass --kubeconfig/);
  });

  it("loads an explicit kubeconfig", () => {
    const dir = mkdtempSync(join(tmpdir(), "kc-"));
    const file = join(dir, "config");
    writeFileSync(
      file,
      "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    );
    expect(loadKubeConfig(file).getCurrentCluster()?.server).toBe("https://127.0.0.1:6443");
  });
});

describe("KubeConfig (read without @kubernetes/client-node)", () => {
  const saved = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG };
  afterEach(() => {
    process.env.HOME = saved.HOME;
    if (saved.KUBECONFIG === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = saved.KUBECONFIG;
  });
  const write = (dir: string, name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };

  it("gives certificates, tokens and basic auth as https options, files relative to the kubeconfig", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kc-"));
    write(dir, "ca.crt", "CA");
    write(dir, "token", "file-token\n");
    const file = write(
      dir,
      "config",
      [
        "clusters:",
        "- {name: c, cluster: {server: 'https://h:6443', certificate-authority: ca.crt, tls-server-name: api}}",
        "users:",
        `- {name: t, user: {tokenFile: token, client-certificate-data: ${Buffer.from("CERT").toString("base64")}, client-key-data: ${Buffer.from("KEY").toString("base64")}}}`,
        "- {name: b, user: {username: me, password: pw}}",
        "contexts: [{name: x, context: {cluster: c, user: t, namespace: team}}, {name: y, context: {cluster: c, user: b}}]",
        "current-context: x",
      ].join("\n"),
    );
    const kc = loadKubeConfig(file);
    const opts: import("node:https").RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    expect(String(opts.ca)).toBe("CA");
    expect(String(opts.cert)).toBe("CERT");
    expect(String(opts.key)).toBe("KEY");
    expect(opts.servername).toBe("api");
    expect(opts.headers).toEqual({ Authorization: "Bearer file-token" });
    expect(kc.getContextObject("x")?.namespace).toBe("team");
    const basic = loadKubeConfig(file, { context: "y" });
    const b: import("node:https").RequestOptions = {};
    await basic.applyToHTTPSOptions(b);
    expect(b.auth).toBe("me:pw");
    expect(() => loadKubeConfig(file, { context: "z" })).toThrow(/context "z" is not in the kubeconfig/);
  });

  it("merges $KUBECONFIG's files as kubectl does: the first to set a name or current-context wins", () => {
    const dir = mkdtempSync(join(tmpdir(), "kc-"));
    const a = write(
      dir,
      "a",
      "clusters: [{name: c, cluster: {server: 'https://a:1'}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n",
    );
    const b = write(
      dir,
      "b",
      "clusters: [{name: c, cluster: {server: 'https://b:1'}}, {name: d, cluster: {server: 'https://d:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: y, context: {cluster: d, user: u}}]\ncurrent-context: x\n",
    );
    process.env.KUBECONFIG = [a, join(dir, "missing"), b].join(":");
    const kc = loadKubeConfig();
    expect(kc.getCurrentCluster()?.server).toBe("https://a:1");
    expect(kc.getContexts().map((c) => c.name)).toEqual(["x", "y"]);
    expect(loadKubeConfig(undefined, { context: "y" }).getCurrentCluster()?.server).toBe("https://d:1");
  });

  it("leaves plugin credentials (exec) to @kubernetes/client-node, imported only then", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kc-"));
    const cred = JSON.stringify({
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      status: { token: "from-plugin" },
    });
    const file = write(
      dir,
      "config",
      [
        "clusters: [{name: c, cluster: {server: 'https://h:6443'}}]",
        "users:",
        "- name: e",
        "  user:",
        "    exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/echo, args: [" +
          JSON.stringify(cred) +
          "], interactiveMode: Never}",
        "contexts: [{name: x, context: {cluster: c, user: e}}]",
        "current-context: x",
      ].join("\n"),
    );
    const opts: import("node:https").RequestOptions = {};
    await loadKubeConfig(file).applyToHTTPSOptions(opts);
    expect(opts.headers).toMatchObject({ Authorization: "Bearer from-plugin" });
    // importing the library takes seconds on a loaded 2-core machine (20 s were not enough at load 44)
  }, 120_000);

  it("in a pod: the service account's token (read anew each time: it rotates), CA and namespace", async () => {
    const home = mkdtempSync(join(tmpdir(), "home-"));
    process.env.HOME = home;
    delete process.env.KUBECONFIG;
    const sa = mkdtempSync(join(tmpdir(), "sa-"));
    write(sa, "token", "t1\n");
    write(sa, "ca.crt", "CA");
    write(sa, "namespace", "ops");
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    process.env.KUBERNETES_SERVICE_HOST = "fd00::1";
    process.env.KUBERNETES_SERVICE_PORT = "443";
    try {
      const kc = new KubeConfig();
      kc.loadFromDefault(sa);
      expect(kc.getCurrentCluster()?.server).toBe("https://[fd00::1]:443");
      expect(kc.getCurrentContext()).toBe("inClusterContext");
      expect(kc.getContextObject("inClusterContext")?.namespace).toBe("ops");
      const a: import("node:https").RequestOptions = {};
      await kc.applyToHTTPSOptions(a);
      expect(a.headers).toEqual({ Authorization: "Bearer t1" });
      expect(String(a.ca)).toBe("CA");
      write(sa, "token", "t2\n");
      const b: import("node:https").RequestOptions = {};
      await kc.applyToHTTPSOptions(b);
      expect(b.headers).toEqual({ Authorization: "Bearer t2" });
    } finally {
      for (const [k, v] of [
        ["KUBERNETES_SERVICE_HOST", saved.host],
        ["KUBERNETES_SERVICE_PORT", saved.port],
      ] as const)
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
    }
  });

  it("fails with ENOENT when no file $KUBECONFIG names exists (no fallback to ~/.kube/config)", () => {
    process.env.KUBECONFIG = join(mkdtempSync(join(tmpdir(), "kc-")), "absent");
    expect(() => loadKubeConfig()).toThrow(expect.objectContaining({ code: "ENOENT" }));
  });
});
