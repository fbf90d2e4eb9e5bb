/**
 * The project's images started as containers with testcontainers, the way Kubernetes runs them: the Livy
 * server image with the operator's own livy.conf and the pod's security settings, the operator image with a
 * kubeconfig for the test bed. Ports are published on 127.0.0.1 only.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GenericContainer, PullPolicy, type StartedTestContainer, Wait } from "testcontainers";
import { desiredConfigMap, desiredDeployment, LIVY_PORT } from "../../src/operator/objects.ts";
import {
  type BuiltImage,
  ensureLoaded,
  localRef,
  type ProjectImages,
  projectImages,
} from "../testbed/images.ts";

// Ryuk, testcontainers' reaper, is an image from Docker Hub (no registry here): every container started
// here is stopped and removed by the test that started it instead.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= "true";
// Ports are published on 127.0.0.1 only (LoopbackContainer): testcontainers must reach them there, not at
// "localhost", which may resolve to ::1 first.
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= "127.0.0.1";

/** Set LIVY_TESTBED_SKIP_IMAGES=1 on a machine that cannot run Docker: the image tests then report skipped. */
export const SKIP_IMAGES = process.env.LIVY_TESTBED_SKIP_IMAGES === "1";

let built: Promise<ProjectImages> | null = null;

/**
 * The images the test bed's build step made (cached: no build here unless the inputs changed), in Docker
 * under localRef() (their own tag; `ref` may name another checkout's build on a shared machine).
 */
export async function images(): Promise<ProjectImages> {
  built ??= (async () => {
    const imgs = await projectImages();
    await ensureLoaded(imgs.operator);
    if (imgs.livy) await ensureLoaded(imgs.livy);
    return imgs;
  })();
  return await built;
}

/**
 * GenericContainer that publishes ports on 127.0.0.1 only (testcontainers binds every interface) and can
 * make the root filesystem read-only, as the operator's Livy pod does.
 */
class LoopbackContainer extends GenericContainer {
  private readOnlyRoot = false;

  withReadOnlyRootFilesystem(): this {
    this.readOnlyRoot = true;
    return this;
  }

  protected override async beforeContainerCreated(): Promise<void> {
    for (const bindings of Object.values(this.hostConfig.PortBindings ?? {}))
      for (const b of bindings as { HostIp?: string }[]) b.HostIp = "127.0.0.1";
    if (this.readOnlyRoot) this.hostConfig.ReadonlyRootfs = true;
  }
}

export interface StartedLivy {
  url: string;
  container: StartedTestContainer;
  stop(): Promise<void>;
}

/**
 * The Livy server image run as the operator's pod runs it: its user, environment, read-only root
 * filesystem with writable scratch only where the pod mounts emptyDirs, no capabilities, no privilege
 * escalation, and the ConfigMap the operator writes (livy.conf, log4j.properties) mounted read-only.
 */
/** The longest a Livy container may take to answer /version (callers' hooks allow for it). */
export const LIVY_CONTAINER_START_MS = 540_000;

export async function startLivyContainer(image: BuiltImage): Promise<StartedLivy> {
  const owner = {
    apiVersion: "livy.dev/v1alpha1",
    kind: "LivySession",
    name: "image",
    namespace: "test",
    uid: "u",
  };
  const conf = desiredConfigMap(owner, undefined).data;
  const pod = desiredDeployment(
    owner,
    undefined,
    { image: localRef(image), imagePullPolicy: "Never", resources: {} },
    "h",
  ).spec.template.spec;
  const c = pod.containers[0];
  if (!c) throw new Error("the operator's Livy pod has no container");
  const dir = mkdtempSync(join(tmpdir(), "livy-image-conf-"));
  for (const [name, text] of Object.entries(conf)) writeFileSync(join(dir, name), text, { mode: 0o644 });
  chmodSync(dir, 0o755);
  const confMount = c.volumeMounts.find((m) => m.name === "conf");
  const scratch = c.volumeMounts.filter((m) => m.name !== "conf").map((m) => m.mountPath);
  let container: StartedTestContainer;
  try {
    container = await new LoopbackContainer(localRef(image))
      .withPullPolicy(PullPolicy.defaultPolicy())
      .withUser(`${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`)
      .withEnvironment(Object.fromEntries(c.env.map((e) => [e.name, e.value ?? ""])))
      .withBindMounts([{ source: dir, target: confMount?.mountPath ?? "/opt/livy/conf", mode: "ro" }])
      // emptyDirs in the pod, writable through its fsGroup: tmpfs mounts owned by that user and group (Docker
      // gives a tmpfs the mode of the directory under it but root's ownership, and ignores mode=)
      .withTmpFs(
        Object.fromEntries(
          scratch.map((p) => [
            p,
            `rw,exec,uid=${pod.securityContext.runAsUser},gid=${pod.securityContext.fsGroup}`,
          ]),
        ),
      )
      .withReadOnlyRootFilesystem()
      .withDroppedCapabilities("ALL")
      .withSecurityOpt("no-new-privileges")
      .withExposedPorts(LIVY_PORT)
      .withWaitStrategy(Wait.forHttp("/version", LIVY_PORT).forStatusCode(200))
      // Livy's JVM answers /version in ~15 s on an idle machine, and took over 240 s at load 60 (seen in CI)
      .withStartupTimeout(LIVY_CONTAINER_START_MS)
      .start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `http://127.0.0.1:${container.getMappedPort(LIVY_PORT)}`,
    container,
    async stop() {
      await container.stop({ timeout: 10_000 }).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface StartedOperator {
  container: StartedTestContainer;
  /** Base URL of its /healthz, /readyz and /metrics (on 127.0.0.1 of this machine). */
  url: string;
  logs(): string;
  stop(): Promise<void>;
}

/**
 * The operator image with a kubeconfig for the test bed's API server. It runs in the host's network
 * namespace: the API server listens on an address of this machine (loopback today), which a container on
 * Docker's bridge cannot reach; the operator's own HTTP port is bound to 127.0.0.1 by its flags.
 */
export async function startOperatorContainer(
  image: BuiltImage,
  opts: { kubeconfig: string; port: number; args?: string[] },
): Promise<StartedOperator> {
  // the image runs as 65532, the admin kubeconfig is root's 0600: a readable copy in a private directory
  const dir = mkdtempSync(join(tmpdir(), "operator-image-"));
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, readFileSync(opts.kubeconfig), { mode: 0o644 });
  let output = "";
  let container: StartedTestContainer;
  try {
    container = await new LoopbackContainer(localRef(image))
      .withPullPolicy(PullPolicy.defaultPolicy())
      .withNetworkMode("host")
      .withBindMounts([{ source: kubeconfig, target: "/etc/livy-operator/kubeconfig", mode: "ro" }])
      .withCommand([
        "--kubeconfig",
        "/etc/livy-operator/kubeconfig",
        "--http-host",
        "127.0.0.1",
        "--http-port",
        String(opts.port),
        ...(opts.args ?? []),
      ])
      .withReadOnlyRootFilesystem()
      .withDroppedCapabilities("ALL")
      .withSecurityOpt("no-new-privileges")
      .withLogConsumer((stream) => {
        stream.on("data", (d: Buffer | string) => {
          output += d.toString();
        });
      })
      .withWaitStrategy(Wait.forLogMessage(/"msg":"/))
      .withStartupTimeout(60_000)
      .start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    container,
    url: `http://127.0.0.1:${opts.port}`,
    logs: () => output,
    async stop() {
      await container.stop({ timeout: 10_000 }).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
