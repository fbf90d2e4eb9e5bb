import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { getContainerRuntimeClient } from "testcontainers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { LivyClient } from "../../src/livy/index.ts";
import { testbed } from "../testbed/context.ts";
import { REPO_ROOT } from "../testbed/paths.ts";

/**
 * The whole product on a real cluster with real containers: kind, both images built from this repository
 * (the operator's Dockerfile and deploy/livy-image), the Helm chart, an example LivySession served by the
 * real Livy image, a statement run through the client, idle teardown, deletion, nothing left behind.
 *
 * It needs Docker and kind and runs only with TEST_CLUSTER=kind. Anywhere else it is reported as skipped,
 * with the reason in its name and on stderr; it is never counted as passed. Asking for it
 * (TEST_CLUSTER=kind) where Docker or kind is missing fails instead of skipping.
 *
 * Knobs: E2E_LIVY_IMAGE uses an already built Livy server image instead of building deploy/livy-image
 * (it downloads Spark's base image and Livy's release); E2E_KEEP_CLUSTER=1 keeps the cluster for inspection.
 */
const requested = process.env.TEST_CLUSTER === "kind";

function onPath(bin: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((d) => d !== "" && existsSync(join(d, bin)));
}

async function whyNot(): Promise<string | null> {
  const missing: string[] = [];
  try {
    await getContainerRuntimeClient(); // testcontainers: DOCKER_HOST, the socket, rootless, Podman...
  } catch (err) {
    missing.push(`no container engine (testcontainers: ${err instanceof Error ? err.message : String(err)})`);
  }
  if (!onPath("kind")) missing.push("kind is not on PATH");
  if (!onPath("docker")) missing.push("the docker CLI is not on PATH");
  return missing.length ? missing.join("; ") : null;
}

const unavailable = await whyNot();
const reason = !requested
  ? `TEST_CLUSTER is not "kind"${unavailable ? ` and ${unavailable}` : ""}`
  : unavailable;
if (reason) {
  console.warn(
    `\n[e2e] the kind end-to-end suite did NOT run: ${reason}. It is reported as skipped, not passed.\n`,
  );
}

describe.runIf(requested && unavailable !== null)("kind end-to-end prerequisites", () => {
  it(`TEST_CLUSTER=kind was asked for, but ${unavailable}`, () => {
    expect.fail(`TEST_CLUSTER=kind needs Docker and kind: ${unavailable}`);
  });
});

const title = reason ? `kind end-to-end [NOT RUN: ${reason}]` : "kind end-to-end";

describe.skipIf(reason !== null)(title, () => {
  const run = promisify(execFile);
  const cluster = `livy-e2e-${Date.now().toString(36)}`;
  let dir = "";
  let kubeconfig = "";
  const operatorImage = "livy-operator:e2e";
  const livyImage = process.env.E2E_LIVY_IMAGE ?? "livy-server:e2e";
  const ns = "e2e";
  const name = "pyspark-minimal";
  // kubectl and helm: the test bed's build, or whatever is on PATH
  const env = () => ({
    ...process.env,
    KUBECONFIG: kubeconfig,
    PATH: [...(testbed()?.binDirs ?? []), process.env.PATH ?? ""].join(delimiter),
  });
  const sh = async (cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}) => {
    const p = run(cmd, args, { env: env(), maxBuffer: 256 << 20, timeout: opts.timeoutMs ?? 600_000 });
    if (opts.input !== undefined) p.child.stdin?.end(opts.input);
    try {
      return (await p).stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`${cmd} ${args.join(" ")}: ${e.stderr || e.message}`);
    }
  };
  const kubectl = (args: string[], input?: string) => sh("kubectl", args, { input });
  const jsonpath = async (args: string[], path: string) =>
    (await kubectl([...args, "-o", `jsonpath=${path}`]).catch(() => "")).trim();
  const until = async (what: string, fn: () => Promise<boolean>, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await fn().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 2_000));
    }
    const status = await kubectl(["get", "livysessions,deploy,pods", "-n", ns, "-o", "wide"]).catch(String);
    throw new Error(`timed out waiting for ${what}\n${status}`);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "kind-e2e-"));
    kubeconfig = join(dir, "kubeconfig");
    await sh("kind", ["create", "cluster", "--name", cluster, "--kubeconfig", kubeconfig, "--wait", "180s"]);
    await sh("docker", ["build", "-t", operatorImage, REPO_ROOT], { timeoutMs: 1_200_000 });
    if (!process.env.E2E_LIVY_IMAGE) {
      await sh("docker", ["build", "-t", livyImage, join(REPO_ROOT, "deploy", "livy-image")], {
        timeoutMs: 3_600_000,
      });
    }
    await sh("kind", ["load", "docker-image", operatorImage, livyImage, "--name", cluster], {
      timeoutMs: 1_200_000,
    });
  }, 5_400_000);

  afterAll(async () => {
    if (process.env.E2E_KEEP_CLUSTER === "1") {
      console.warn(`[e2e] kept kind cluster ${cluster} (kubeconfig ${kubeconfig})`);
      return;
    }
    await sh("kind", ["delete", "cluster", "--name", cluster]).catch(() => "");
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 300_000);

  it("installs the chart with both images and the operator becomes ready", async () => {
    await sh("helm", [
      "install",
      "livy-operator",
      join(REPO_ROOT, "charts", "livy-operator"),
      "--namespace",
      "livy-operator",
      "--create-namespace",
      "--set",
      `image.repository=${operatorImage.split(":")[0]}`,
      "--set",
      `image.tag=${operatorImage.split(":")[1]}`,
      "--set",
      "image.pullPolicy=Never",
      "--set",
      `livyServer.image=${livyImage}`,
      "--set",
      "livyServer.imagePullPolicy=IfNotPresent",
      "--wait",
      "--timeout",
      "5m",
    ]);
    expect(
      await jsonpath(["get", "deploy/livy-operator", "-n", "livy-operator"], "{.status.readyReplicas}"),
    ).toBe("1");
  }, 600_000);

  it("serves an example LivySession: Ready, then a statement through the client", async () => {
    await kubectl(["create", "namespace", ns]);
    const example = parse(readFileSync(join(REPO_ROOT, "examples", `${name}.yaml`), "utf8")) as {
      spec: Record<string, unknown>;
    };
    example.spec.idleTimeout = "90s"; // short, so the idle teardown below happens within the test
    await kubectl(["apply", "-n", ns, "-f", "-"], stringify(example));
    await until(
      "Ready",
      async () =>
        (await jsonpath(
          ["get", `livysession/${name}`, "-n", ns],
          '{.status.conditions[?(@.type=="Ready")].status}',
        )) === "True",
      900_000,
    );
    const id = Number(await jsonpath(["get", `livysession/${name}`, "-n", ns], "{.status.livySessionId}"));
    const forward = await portForward(env(), ns, `svc/livy-${name}`, 8998);
    try {
      const client = new LivyClient({ baseUrl: `http://127.0.0.1:${forward.port}` });
      try {
        const result = await client.session(id).run("spark.range(100).count()", { timeoutMs: 300_000 });
        expect(JSON.stringify(result)).toContain("100");
      } finally {
        await client.close();
      }
    } finally {
      forward.proc.kill();
    }
  }, 1_200_000);

  it("tears the server down after idleTimeout and keeps the LivySession", async () => {
    await until(
      "Idle=True (IdleTimeout)",
      async () =>
        (await jsonpath(
          ["get", `livysession/${name}`, "-n", ns],
          '{.status.conditions[?(@.type=="Idle")].reason}',
        )) === "IdleTimeout",
      300_000,
    );
    await until(
      "the Livy server's Deployment removed",
      async () => (await kubectl(["get", "deploy", "-n", ns, "-o", "name"])).trim() === "",
      120_000,
    );
    expect(await jsonpath(["get", `livysession/${name}`, "-n", ns], "{.metadata.name}")).toBe(name);
  }, 600_000);

  it("deletes it and leaves nothing behind", async () => {
    await kubectl(["delete", "-n", ns, `livysession/${name}`, "--timeout=120s"]);
    await until(
      "no object of the operator left in the namespace",
      async () =>
        (
          await kubectl([
            "get",
            "deploy,rs,pods,svc,cm",
            "-n",
            ns,
            "-l",
            "app.kubernetes.io/managed-by=livy-operator",
            "-o",
            "name",
          ])
        ).trim() === "",
      180_000,
    );
    expect((await kubectl(["get", "livysessions", "-n", ns, "-o", "name"])).trim()).toBe("");
    await sh("helm", ["uninstall", "livy-operator", "--namespace", "livy-operator", "--wait"]);
    expect((await kubectl(["get", "all", "-n", "livy-operator", "-o", "name"])).trim()).toBe("");
  }, 600_000);
});

/** kubectl port-forward on a free local port; resolves with the port once it forwards. */
async function portForward(
  env: NodeJS.ProcessEnv,
  namespace: string,
  target: string,
  remotePort: number,
): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn("kubectl", ["port-forward", "-n", namespace, target, `0:${remotePort}`], { env });
  return await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`port-forward did not start: ${out}`)), 60_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: Number(m[1]) });
      }
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`port-forward exited with ${code}: ${out}`));
    });
  });
}
