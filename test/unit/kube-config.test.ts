import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadKubeConfig } from "../../src/kube/client.ts";

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
