/**
 * The project's two images as built: the test bed's build step runs `docker build` on the repository's
 * Dockerfile and deploy/livy-image/Dockerfile (test/testbed/images.ts; cached, so nothing is built here
 * unless an input changed), and these tests look inside the results, run them, and start each as a
 * container with testcontainers the way it runs in Kubernetes. (The Livy contract suite runs against the
 * Livy image too: livy-contract.test.ts.)
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { desiredDeployment, LIVY_PORT } from "../../src/operator/objects.ts";
import { testbed } from "../testbed/context.ts";
import {
  type BuiltImage,
  dockerCli,
  localRef,
  type ProjectImages,
  projectImageRefs,
} from "../testbed/images.ts";
import { REPO_ROOT, versions } from "../testbed/paths.ts";
import { freePort } from "../testbed/process.ts";
import {
  images,
  LIVY_CONTAINER_START_MS,
  SKIP_IMAGES,
  type StartedLivy,
  type StartedOperator,
  startLivyContainer,
  startOperatorContainer,
} from "./containers.ts";
import { applySession, createNamespace, installCrd, isReady, kubectl, until, waitFor } from "./harness.ts";

const run = promisify(execFile);
const v = versions();
const SKIP_LIVY = process.env.LIVY_TESTBED_SKIP_LIVY === "1";

interface ImageConfig {
  User: string;
  Env: string[];
  Entrypoint: string[] | null;
  Cmd: string[] | null;
  WorkingDir: string;
  ExposedPorts: Record<string, unknown> | null;
  Labels: Record<string, string> | null;
}

async function config(ref: string): Promise<ImageConfig> {
  const { stdout } = await run(dockerCli(), ["image", "inspect", "--format", "{{json .Config}}", ref]);
  return JSON.parse(stdout) as ImageConfig;
}

const envOf = (c: ImageConfig) =>
  Object.fromEntries(c.Env.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));

/** Runs a shell script in a fresh container of the image (removed afterwards); its stdout, or throws. */
async function sh(ref: string, script: string, opts: { user?: string } = {}): Promise<string> {
  // no network; the hostname resolves (Spark looks its own up), as the kubelet's /etc/hosts makes it in a pod
  const args = ["run", "--rm", "--network", "none", "--hostname", "localhost", "--entrypoint", "/bin/sh"];
  if (opts.user) args.push("--user", opts.user);
  try {
    const { stdout } = await run(dockerCli(), [...args, ref, "-c", script], {
      timeout: 180_000,
      maxBuffer: 32 << 20,
    });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${ref}: ${script}\n${e.stdout ?? ""}${e.stderr ?? e.message}`);
  }
}

if (SKIP_IMAGES) {
  process.stderr.write(
    "\n[images] LIVY_TESTBED_SKIP_IMAGES=1: the image tests are SKIPPED (not built, not run).\n\n",
  );
}

describe.skipIf(SKIP_IMAGES)("the project's images", () => {
  let imgs: ProjectImages;

  beforeAll(async () => {
    imgs = await images();
  }, 3_600_000);

  it("are named as users build them and the chart and operator deploy them by default", () => {
    const refs = projectImageRefs();
    expect(imgs.operator.ref).toBe(refs.operator);
    const values = parse(readFileSync(join(REPO_ROOT, "charts", "livy-operator", "values.yaml"), "utf8")) as {
      image: { repository: string };
      livyServer: { image: string };
    };
    const chart = parse(readFileSync(join(REPO_ROOT, "charts", "livy-operator", "Chart.yaml"), "utf8")) as {
      appVersion: string;
    };
    expect(refs.operator).toBe(`${values.image.repository}:${chart.appVersion}`);
    expect(refs.livy).toBe(values.livyServer.image);
    if (imgs.livy) expect(imgs.livy.ref).toBe(refs.livy);
  });

  describe("operator image", () => {
    let op: BuiltImage;
    beforeAll(() => {
      op = imgs.operator;
    });

    it("is configured to run the operator as a numeric non-root user on port 8080", async () => {
      const c = await config(localRef(op));
      expect(c.User).toBe("65532:65532"); // numeric: runAsNonRoot can verify it; the chart uses the same ids
      expect(c.Entrypoint).toEqual(["node", "--max-semi-space-size=4", "dist/operator/main.js"]);
      expect(c.WorkingDir).toBe("/app");
      expect(Object.keys(c.ExposedPorts ?? {})).toEqual(["8080/tcp"]);
      expect(envOf(c).NODE_ENV).toBe("production");
      const values = parse(
        readFileSync(join(REPO_ROOT, "charts", "livy-operator", "values.yaml"), "utf8"),
      ) as {
        podSecurityContext: { runAsUser: number; runAsGroup: number };
      };
      const pod = values.podSecurityContext;
      expect(c.User).toBe(`${pod.runAsUser}:${pod.runAsGroup}`);
    });

    it("runs `livy-operator --help` as uid 65532", async () => {
      const { stdout } = await run(
        dockerCli(),
        ["run", "--rm", "--network", "none", localRef(op), "--help"],
        {
          timeout: 60_000,
        },
      );
      expect(stdout).toContain("Usage: livy-operator [options]");
      expect(stdout).toContain("--default-image");
      expect((await sh(localRef(op), "id -u; id -g")).trim().split("\n")).toEqual(["65532", "65532"]);
    });

    it("holds Node 24 on Debian bookworm, the built operator and production dependencies only", async () => {
      const out = await sh(
        localRef(op),
        [
          "node --version",
          "cut -d. -f1 /etc/debian_version",
          "ls /app",
          // nothing of the build: no npm, no curl, no compiler, no package lists, no sources
          "for x in npm npx corepack curl gcc tsc; do command -v $x || true; done",
          "ls /var/lib/apt/lists | grep -v -e '^lock$' -e '^partial$' || true",
          "echo ---",
          "cd /app/node_modules && find . -mindepth 1 -maxdepth 2 -type d | sed 's|^./||' | grep -v '^\\.' | sort",
        ].join("; "),
      );
      const [head = "", listing = ""] = out.split("---\n");
      const lines = head.trim().split("\n");
      expect(lines[0]).toMatch(new RegExp(`^v${v.NODE_MAJOR}\\.`));
      expect(lines[1]).toBe("12"); // bookworm
      expect(lines.slice(2).sort()).toEqual(["dist", "node_modules", "package.json"]);
      const installed = new Set(listing.trim().split("\n"));
      const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
        dependencies: Record<string, string>;
      };
      for (const dep of Object.keys(pkg.dependencies)) expect(installed.has(dep), dep).toBe(true);
      // what the lockfile marks dev-only must be absent (a devDependency that a production dependency also
      // needs, such as @types/node, is rightly present)
      const lock = JSON.parse(readFileSync(join(REPO_ROOT, "package-lock.json"), "utf8")) as {
        packages: Record<string, { dev?: boolean }>;
      };
      const devOnly = Object.entries(lock.packages)
        .filter(([p, meta]) => meta.dev === true && /^node_modules\/(@[^/]+\/)?[^/]+$/.test(p))
        .map(([p]) => p.slice("node_modules/".length));
      expect(devOnly.length).toBeGreaterThan(0);
      expect(devOnly.filter((p) => installed.has(p))).toEqual([]);
      for (const tool of ["typescript", "vitest", "@biomejs/biome", "testcontainers", "fast-check"])
        expect(installed.has(tool), tool).toBe(false);
    });

    describe("started with testcontainers, with a kubeconfig for the test bed", () => {
      let started: StartedOperator | null = null;
      let ns = "";

      beforeAll(async () => {
        await installCrd();
        ns = await createNamespace("opimage");
        started = await startOperatorContainer(op, {
          kubeconfig: testbed().kubeconfig,
          port: await freePort(),
          // kwok's pods run nothing: the stand-in answers for the Livy server, as in operator.test.ts
          args: ["--server-url-template", testbed().standinUrl, "--session-poll-interval-ms", "500"],
        });
      });

      afterAll(async () => {
        // finalizers need the operator: delete the sessions before stopping it
        await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=60s"]).catch(
          () => "",
        );
        await started?.stop();
        await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
      });

      it("serves /healthz and /readyz, on loopback only", async () => {
        const get = async (path: string) => {
          const res = await fetch(`${started?.url}${path}`).catch(() => null);
          return res ? { status: res.status, body: await res.text() } : null;
        };
        await until("/healthz", async () => (await get("/healthz"))?.status === 200, 60_000);
        await until("/readyz", async () => (await get("/readyz"))?.status === 200, 60_000);
        expect((await get("/metrics"))?.body).toContain("controller_runtime_reconcile_total");
      });

      it("reconciles a LivySession to Ready and deletes it", async () => {
        await applySession(ns, "image", { kind: "pyspark", idleTimeout: "1h" });
        const ready = await waitFor(ns, "image", isReady, "Ready", 120_000);
        expect(ready.status?.sessionURL).toContain(testbed().standinUrl);
        await kubectl(["delete", "livysession", "image", "-n", ns, "--wait=true", "--timeout=60s"]);
        expect(started?.logs()).not.toMatch(/"level":50/); // no errors logged
      });
    });
  });

  describe.skipIf(SKIP_LIVY)("Livy server image", () => {
    let livy: BuiltImage;
    const pod = desiredDeployment(
      { apiVersion: "livy.dev/v1alpha1", kind: "LivySession", name: "x", namespace: "n", uid: "u" },
      undefined,
      { image: "i", imagePullPolicy: "IfNotPresent", resources: {} },
      "h",
    ).spec.template.spec;
    const container = pod.containers[0];

    beforeAll(() => {
      if (!imgs.livy) throw new Error("no Livy server image although real Livy is not skipped");
      livy = imgs.livy;
    });

    it("is configured as the operator's pod expects: user, port, entry point, directories", async () => {
      const c = await config(localRef(livy));
      const env = envOf(c);
      expect(c.User).toBe(`${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`);
      expect(Object.keys(c.ExposedPorts ?? {})).toEqual([`${LIVY_PORT}/tcp`]);
      // Spark's entrypoint contract (`executor` starts an executor: the image is its sessions' executor
      // image too); anything else is exec'd under tini, which reaps what Livy and Spark start
      expect(c.Entrypoint).toEqual(["/opt/entrypoint.sh"]);
      const pid1 = await run(dockerCli(), [
        "run",
        "--rm",
        "--network",
        "none",
        localRef(livy),
        "/bin/sh",
        "-c",
        "tr '\\0' ' ' < /proc/1/cmdline",
      ]);
      expect(pid1.stdout.trim()).toBe("/usr/bin/tini -s -- /bin/sh -c tr '\\0' ' ' < /proc/1/cmdline");
      expect(c.Cmd).toEqual(["/opt/livy/bin/livy-server"]); // no "start": the server in the foreground
      expect(env.LIVY_HOME).toBe("/opt/livy");
      expect(env.SPARK_HOME).toBe("/opt/spark");
      expect(env.PYSPARK_PYTHON).toBe("python3");
      const podEnv = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
      expect(podEnv.LIVY_CONF_DIR).toBe(env.LIVY_CONF_DIR);
      expect(podEnv.LIVY_LOG_DIR).toBe(env.LIVY_LOG_DIR);
      expect(podEnv.SPARK_LOCAL_DIRS).toBe(env.SPARK_LOCAL_DIRS);
      const mounts = container?.volumeMounts ?? [];
      expect(mounts.find((m) => m.name === "conf")?.mountPath).toBe(env.LIVY_CONF_DIR);
      const writable = mounts.filter((m) => !("readOnly" in m && m.readOnly)).map((m) => m.mountPath);
      expect(writable.sort()).toEqual(["/opt/livy/logs", "/opt/spark/work-dir", "/tmp"]);
      for (const dir of [env.HOME, env.SPARK_LOCAL_DIRS, env.LIVY_LOG_DIR, c.WorkingDir])
        expect(
          writable.some((w) => dir === w || dir?.startsWith(`${w}/`)),
          `${dir} is on a writable mount`,
        ).toBe(true);
    });

    it(`holds Java 17, Spark ${v.SPARK_VERSION}, Python 3 and Livy ${v.LIVY_VERSION} where the layout says`, async () => {
      const out = await sh(
        localRef(livy),
        [
          "id -u; id -g; id -un",
          "java -version 2>&1 | head -1",
          "python3 --version",
          "/opt/spark/bin/spark-submit --version 2>&1 | grep -o 'version [0-9.]*' | head -1",
          `ls /opt/livy/jars/livy-server-${v.LIVY_VERSION}.jar /opt/livy/rsc-jars/livy-rsc-${v.LIVY_VERSION}.jar /opt/livy/repl_2.12-jars/livy-repl_2.12-${v.LIVY_VERSION}.jar`,
          "ls /opt/spark/python/lib",
          "cut -d. -f1 /etc/debian_version",
          "readlink -f /proc/1/exe 2>/dev/null || true",
        ].join("; "),
      );
      const lines = out.trim().split("\n");
      expect(lines.slice(0, 3)).toEqual(["185", "185", "spark"]);
      expect(lines[3]).toMatch(/^openjdk version "17\./);
      expect(lines[4]).toMatch(/^Python 3\.\d+/);
      expect(lines[5]).toBe(`version ${v.SPARK_VERSION}`);
      expect(lines.slice(6, 9)).toHaveLength(3);
      expect(out).toContain("pyspark.zip");
      expect(out).toMatch(/py4j-[0-9.]+-src\.zip/);
      expect(out).toContain("\n12\n");
    });

    it("ships one copy of each Livy jar, Scala 2.12 only, and nothing of the build", async () => {
      const out = await sh(
        localRef(livy),
        [
          "cd /opt/livy",
          "for j in repl_2.12-jars/*.jar; do [ -f rsc-jars/$(basename $j) ] && echo DUP $j; done",
          "ls jars rsc-jars repl_2.12-jars | grep -E '_2\\.1[13][-_.]' || true",
          "for x in pip pip3 curl wget gcc unzip; do command -v $x || true; done",
          "ls /var/lib/apt/lists | grep -v -e '^lock$' -e '^partial$' || true",
          // root owns everything the image ships; uid 185 may write only to its scratch directories
          "find /opt/livy /opt/spark -xdev ! -user root ! -path /opt/livy/logs ! -path /opt/spark/work-dir | head",
          "find /opt /etc /usr -xdev -perm -o+w ! -type l | head",
        ].join("; "),
      );
      expect(out.trim()).toBe("");
    });

    describe("started with testcontainers as the operator's pod runs it (read-only root filesystem)", () => {
      let started: StartedLivy | null = null;

      beforeAll(async () => {
        started = await startLivyContainer(livy);
      }, LIVY_CONTAINER_START_MS + 60_000);

      afterAll(async () => {
        await started?.stop();
      });

      it("answers /version on a loopback port, with the operator's livy.conf, as uid 185 under tini", async () => {
        const res = await fetch(`${started?.url}/version`);
        expect(res.status).toBe(200);
        expect(((await res.json()) as { version: string }).version).toBe(v.LIVY_VERSION);
        const inspect = await started?.container.exec([
          "sh",
          "-c",
          "id -u; cat /proc/1/cmdline | tr '\\0' ' '",
        ]);
        const [uid, cmdline] = (inspect?.output ?? "").trim().split("\n");
        expect(uid).toBe("185");
        expect(cmdline).toMatch(/^\/usr\/bin\/tini -s -- \/opt\/livy\/bin\/livy-server/);
        // the root filesystem is read-only: Livy started regardless
        const write = await started?.container.exec(["sh", "-c", "touch /opt/livy/x 2>&1; echo $?"]);
        expect(write?.output).toContain("Read-only file system");
      });
    });
  });
});
