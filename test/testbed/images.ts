/**
 * The test bed's image toolkit: container images built with a real `docker build` from the project's own
 * Dockerfiles, on a machine without an image registry.
 *
 * - `ensureDocker()`: a Docker daemon that answers; one is started (with its own log) when none does. It is a
 *   machine service like on a user's machine: `testbed down` leaves it running.
 * - `debianBase()`: the one base image the Dockerfiles build on (`BASE_IMAGE`; users get Docker Hub's
 *   debian:bookworm-slim). Here: `debootstrap --variant=minbase`, trimmed the way the official slim image
 *   is, `docker import`ed; cached by suite, package list and mirror.
 * - `buildImage()`: `docker build` with build args, cached by a hash of its inputs (the Dockerfile, the files
 *   of the context that .dockerignore lets through, the build args, the base's key, inputs served to the
 *   build), then `docker save`d to a tar in the cache. A warm call hashes the inputs and returns; it needs
 *   no daemon.
 * - `importImage()`: that tar into a containerd (socket, namespace), for a real node's kubelet.
 * - `projectImages()`: the operator image and the Livy server image, named as users name them (`ref`), with
 *   their tars (`tar`): what `up` or a test imports into a node with `importImage(image, { address })`.
 *   Cached, it answers in about 2 s without Docker.
 *
 * Builds use the classic builder: the docker CLI here is Docker 28 without its buildx plugin, whose
 * `docker build` refuses BuildKit, and BuildKit would fetch `# syntax=` frontends and base-image metadata
 * from Docker Hub. Both Dockerfiles also build with BuildKit offline: LIVY_IMAGE_BUILDKIT=1 with a CLI that
 * has it (buildx, or Debian's 20.10 CLI: LIVY_DOCKER_CLI=/usr/bin/docker). Run a built image by
 * `localRef()`: `ref` may name another checkout's build of the same image on a shared machine.
 */
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  createReadStream,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, dirname, join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import dockerignore from "@balena/dockerignore";
import { cacheDir, REPO_ROOT, TESTBED_DIR, versions } from "./paths.ts";

const execFileP = promisify(execFile);
const log = (msg: string) => process.stderr.write(`[images] ${msg}\n`);

/** Bumped when what this file does to produce an image changes, so that cached images are rebuilt. */
const RECIPE = "1";

export interface Image {
  /** The name the image is tagged with, in Docker and in the tar. */
  ref: string;
  /**
   * `saved`: a `docker save` tar (loads into Docker, imports into containerd). `rootfs`: a root filesystem
   * tar that `docker import` turns into an image (the Debian base).
   */
  format: "saved" | "rootfs";
  tar: string;
  /** Hash of everything the image was made from; a change rebuilds it. Also its label LABEL_KEY in Docker. */
  key: string;
}

/** The label that ties an image in Docker to the cache entry it came from. */
export const LABEL_KEY = "dev.livy-operator.cache-key";

export interface BuiltImage extends Image {
  name: string;
  /** Docker's image id (the config digest), `sha256:...`; the same after docker load or a containerd import. */
  id: string;
  /** True when it came from the cache without a build. */
  cached: boolean;
  /** Seconds the build (docker build + docker save) took when it was made. */
  buildSeconds: number;
  /** Size of the saved tar (uncompressed) and of the image as Docker reports it (unpacked layers). */
  tarBytes: number;
  sizeBytes: number;
}

export function imagesCacheDir(): string {
  return join(cacheDir(), "images");
}

// ------------------------------------------------------------------------------------------------ docker

export interface Docker {
  /** The docker CLI used: LIVY_DOCKER_CLI, else `docker` on PATH. */
  cli: string;
  clientVersion: string;
  serverVersion: string;
}

export function dockerCli(): string {
  return process.env.LIVY_DOCKER_CLI || "docker";
}

/** Environment of every docker command: the classic builder unless LIVY_IMAGE_BUILDKIT=1 (see buildImage). */
function dockerEnv(): NodeJS.ProcessEnv {
  return { ...process.env, DOCKER_BUILDKIT: process.env.LIVY_IMAGE_BUILDKIT === "1" ? "1" : "0" };
}

async function docker(args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  try {
    const { stdout } = await execFileP(dockerCli(), args, {
      env: dockerEnv(),
      maxBuffer: 64 << 20,
      timeout: opts.timeoutMs ?? 120_000,
    });
    return stdout.trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${dockerCli()} ${args.join(" ")}: ${(e.stderr || e.message).trim()}`);
  }
}

async function serverVersion(): Promise<string | null> {
  try {
    return (await docker(["version", "--format", "{{.Server.Version}}"], { timeoutMs: 15_000 })) || null;
  } catch {
    return null;
  }
}

/** Where a Docker daemon this toolkit starts writes its log. */
export function dockerdLog(): string {
  return process.env.LIVY_DOCKERD_LOG || "/var/log/dockerd.log";
}

/**
 * A Docker daemon that answers. When none does and DOCKER_HOST does not name another one, starts the
 * machine's dockerd (as root; it stays up after the test bed goes down, like the service it is elsewhere),
 * logging to dockerdLog(). Before that, IPv4 forwarding is switched on: dockerd would switch it on itself
 * and then set the FORWARD chain's policy to DROP, which cuts the test bed's node networks (REAL-NODES.md).
 * The CLI may be newer than the daemon (Docker 28 against Debian's 20.10): it negotiates the API version.
 */
export async function ensureDocker(): Promise<Docker> {
  const cli = dockerCli();
  const answer = async (): Promise<Docker | null> => {
    const server = await serverVersion();
    if (!server) return null;
    const client = await docker(["version", "--format", "{{.Client.Version}}"]).catch(() => "?");
    return { cli, clientVersion: client, serverVersion: server };
  };
  const up = await answer();
  if (up) return up;
  try {
    await execFileP(cli, ["--version"], { timeout: 15_000 });
  } catch {
    throw new Error(`the docker CLI (${cli}) does not run: scripts/system-deps.sh installs docker.io`);
  }
  const host = process.env.DOCKER_HOST;
  if (host && host !== "unix:///var/run/docker.sock")
    throw new Error(
      `DOCKER_HOST=${host} does not answer (${cli} version); start that daemon or unset DOCKER_HOST`,
    );
  const dockerd = ["/usr/sbin/dockerd", "/usr/bin/dockerd"].find((p) => existsSync(p));
  if (!dockerd)
    throw new Error("no Docker daemon answers and dockerd is not installed (scripts/system-deps.sh)");
  if (process.getuid?.() !== 0)
    throw new Error(
      "no Docker daemon answers on /var/run/docker.sock; start it (e.g. `sudo systemctl start docker`) " +
        "or run as root so that the test bed starts it",
    );
  const forward = "/proc/sys/net/ipv4/ip_forward";
  if (existsSync(forward) && readFileSync(forward, "utf8").trim() !== "1") {
    log("net.ipv4.ip_forward=1 (dockerd would set it and turn the FORWARD policy to DROP)");
    writeFileSync(forward, "1\n");
  }
  const logFile = dockerdLog();
  mkdirSync(dirname(logFile), { recursive: true });
  log(`no Docker daemon answers: starting ${dockerd} (log ${logFile}); it stays up after the test bed`);
  const fd = openSync(logFile, "a");
  const child = spawn(dockerd, [], { cwd: "/", stdio: ["ignore", fd, fd], detached: true });
  closeSync(fd);
  child.unref();
  let exited: number | null = null;
  child.on("exit", (code) => {
    exited = code ?? -1;
  });
  // a second starter loses the race for dockerd's pid file and exits: the first one's daemon still counts
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    const started = await answer();
    if (started) return started;
    await sleep(500);
  }
  const tailText = readFileSync(logFile, "utf8").split("\n").slice(-25).join("\n");
  throw new Error(
    `dockerd did not answer within 90 s${exited !== null ? ` (exited ${exited})` : ""}:\n${tailText}`,
  );
}

async function imageKey(ref: string): Promise<string | null> {
  try {
    const labels = JSON.parse(
      await docker(["image", "inspect", "--format", "{{json .Config.Labels}}", ref], { timeoutMs: 30_000 }),
    ) as Record<string, string> | null;
    return labels?.[LABEL_KEY] ?? null;
  } catch {
    return null;
  }
}

/**
 * The tag that names exactly this build in Docker: `ref` may point at another build of the same image
 * (another checkout on the same machine builds and loads its own), this one does not move.
 */
export function localRef(image: Image): string {
  if (image.format === "rootfs") return image.ref; // its tag is the key already
  const tagged = /:[^/]+$/.test(image.ref);
  return tagged ? `${image.ref}-${image.key}` : `${image.ref}:${image.key}`;
}

/**
 * Makes Docker hold the image, from its tar, unless it already holds that exact one (by the cache-key
 * label): `docker load` for a saved image (which also points `ref` at it), `docker import` for a root
 * filesystem. Returns localRef(image), the name to run it by.
 */
export function ensureLoaded(image: Image): Promise<string> {
  // one load per image at a time in this process (two builds on one base ask together)
  const key = `${image.ref}@${image.key}`;
  let p = loading.get(key);
  if (!p) {
    p = load(image).finally(() => loading.delete(key));
    loading.set(key, p);
  }
  return p;
}

const loading = new Map<string, Promise<string>>();

async function load(image: Image): Promise<string> {
  await ensureDocker();
  const local = localRef(image);
  if ((await imageKey(local)) === image.key) return local;
  const started = Date.now();
  if (image.format === "saved") {
    const id = (image as Partial<BuiltImage>).id;
    if (!id) throw new Error(`${image.ref}: a saved image needs its id`);
    await docker(["load", "-i", image.tar], { timeoutMs: 900_000 });
    // by id: `ref` may already point at another checkout's build again
    await docker(["tag", id, local]);
  } else {
    // the config Docker Hub's debian images carry (docker import sets no PATH of its own), and the key
    await docker(
      [
        "import",
        "--change",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change",
        'CMD ["bash"]',
        "--change",
        `LABEL ${LABEL_KEY}=${image.key}`,
        image.tar,
        local,
      ],
      { timeoutMs: 900_000 },
    );
  }
  if ((await imageKey(local)) !== image.key)
    throw new Error(
      `docker ${image.format === "saved" ? "load" : "import"} ${image.tar}: ${local} is not it`,
    );
  log(
    `${image.format === "saved" ? "loaded" : "imported"} ${local} into Docker in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return local;
}

/**
 * A lock between processes on this machine (the cache is shared by every checkout and test run): a
 * directory holding the owner's pid. A lock whose owner is gone is taken over. Returns the release.
 */
export async function lock(path: string, what: string, timeoutMs = 3_600_000): Promise<() => void> {
  const owner = join(path, "pid");
  const deadline = Date.now() + timeoutMs;
  let told = false;
  mkdirSync(dirname(path), { recursive: true });
  for (;;) {
    try {
      mkdirSync(path);
      writeFileSync(owner, String(process.pid));
      return () => rmSync(path, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    let pid = 0;
    try {
      pid = Number(readFileSync(owner, "utf8"));
    } catch {
      // being created: its owner writes the pid right after mkdir
    }
    const stale = pid > 0 ? !isAlive(pid) : Date.now() - statSafe(path) > 60_000;
    if (stale) {
      rmSync(path, { recursive: true, force: true });
      continue;
    }
    if (!told) {
      log(`waiting for process ${pid || "?"} (${what})`);
      told = true;
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: ${path} still held by process ${pid} after ${timeoutMs} ms`);
    await sleep(1_000);
  }
}

function statSafe(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return Date.now();
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

// ------------------------------------------------------------------------------------------ debian base

export interface DebianBaseSpec {
  /** Debian suite; `bookworm` (what debian:bookworm-slim is). */
  suite?: string;
  /** Packages added to minbase (none for the project's images: their Dockerfiles install what they need). */
  packages?: string[];
  mirror?: string;
  securityMirror?: string;
}

// What debuerreotype does to make Docker Hub's slim variant, so that the base built here behaves like it:
// no docs, man pages or locales, even for packages installed later; apt keeps no caches.
const SLIM_DPKG = `# the "slim" variant: files containers do not need are not installed (as in debian:*-slim)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
`;
const APT_CLEAN = `DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
`;

/**
 * CA certificates this machine adds to Debian's (/usr/local/share/ca-certificates): copied into the base,
 * where `apt-get install ca-certificates` in a Dockerfile adds them to the bundle that curl, pip and npm
 * use. A machine behind a TLS-intercepting proxy (this one) needs it to reach the package registries from a
 * build; elsewhere there are none and the base has none. Part of the base's cache key.
 */
function localCaCertificates(): { name: string; content: Buffer }[] {
  const dir = "/usr/local/share/ca-certificates";
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".crt") && statSync(join(dir, f)).isFile())
    .sort()
    .map((f) => ({ name: f, content: readFileSync(join(dir, f)) }));
}

function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * The Debian base image as a root filesystem tar, made by debootstrap when missing from the cache (root
 * needed). ensureLoaded() imports it into Docker; buildImage() does that when it builds.
 */
export async function debianBase(spec: DebianBaseSpec = {}): Promise<Image> {
  const suite = spec.suite ?? "bookworm";
  const packages = [...(spec.packages ?? [])].sort();
  const mirror = spec.mirror ?? "http://deb.debian.org/debian";
  const securityMirror = spec.securityMirror ?? "http://deb.debian.org/debian-security";
  const cas = localCaCertificates();
  const key = sha256(
    JSON.stringify({
      RECIPE,
      suite,
      packages,
      mirror,
      securityMirror,
      SLIM_DPKG,
      APT_CLEAN,
      cas: cas.map((c) => [c.name, sha256(c.content)]),
    }),
  ).slice(0, 16);
  const dir = join(imagesCacheDir(), `debian-${suite}-${key}`);
  const tar = join(dir, "rootfs.tar");
  const ref = `livy-operator-testbed/debian:${suite}-${key}`;
  if (!existsSync(join(dir, ".complete"))) {
    const release = await lock(`${dir}.lock`, `debootstrap ${suite}`);
    try {
      if (!existsSync(join(dir, ".complete")))
        await debootstrap({ suite, packages, mirror, securityMirror, cas, dir, tar });
    } finally {
      release();
    }
  }
  return { ref, format: "rootfs", tar, key };
}

async function debootstrap(o: {
  suite: string;
  packages: string[];
  mirror: string;
  securityMirror: string;
  cas: { name: string; content: Buffer }[];
  dir: string;
  tar: string;
}): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("debootstrap needs root to make the Debian base image");
  if (!existsSync("/usr/sbin/debootstrap"))
    throw new Error("debootstrap is not installed (scripts/system-deps.sh installs it)");
  const started = Date.now();
  rmSync(o.dir, { recursive: true, force: true });
  mkdirSync(o.dir, { recursive: true });
  const root = join(o.dir, "rootfs");
  const logFile = join(o.dir, "debootstrap.log");
  log(`debootstrap --variant=minbase ${o.suite} (cold: 1-3 min; log ${logFile})`);
  const include = o.packages.length ? [`--include=${o.packages.join(",")}`] : [];
  await runLogged(
    "/usr/sbin/debootstrap",
    ["--variant=minbase", ...include, o.suite, root, o.mirror],
    logFile,
  );
  // trim and configure like debian:<suite>-slim
  const w = (p: string, text: string) => {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), text);
  };
  w("etc/dpkg/dpkg.cfg.d/docker", SLIM_DPKG);
  w("etc/apt/apt.conf.d/docker-clean", APT_CLEAN);
  w("etc/apt/apt.conf.d/docker-no-languages", 'Acquire::Languages "none";\n');
  w("etc/apt/apt.conf.d/docker-gzip-indexes", 'Acquire::GzipIndexes "true";\n');
  w("etc/apt/apt.conf.d/docker-autoremove-suggests", 'Apt::AutoRemove::SuggestsImportant "false";\n');
  rmSync(join(root, "etc/apt/sources.list"), { force: true });
  const keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
  w(
    "etc/apt/sources.list.d/debian.sources",
    `Types: deb\nURIs: ${o.mirror}\nSuites: ${o.suite} ${o.suite}-updates\nComponents: main\nSigned-By: ${keyring}\n\n` +
      `Types: deb\nURIs: ${o.securityMirror}\nSuites: ${o.suite}-security\nComponents: main\nSigned-By: ${keyring}\n`,
  );
  for (const ca of o.cas) w(join("usr/local/share/ca-certificates", ca.name), ca.content.toString("utf8"));
  w("etc/machine-id", "");
  w("etc/hostname", "localhost\n");
  w("etc/resolv.conf", "");
  await runLogged(
    "/bin/sh",
    [
      "-c",
      'cd "$1" && find usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete && ' +
        "find usr/share/doc -mindepth 1 -type d -empty -delete && " +
        "rm -rf usr/share/man/* usr/share/locale/* usr/share/info/* usr/share/groff/* " +
        "usr/share/lintian/overrides/* var/cache/apt/* var/lib/apt/lists/* var/log/* tmp/* root/.bash_history",
      "sh",
      root,
    ],
    logFile,
  );
  const part = `${o.tar}.part`;
  await runLogged("tar", ["--numeric-owner", "--xattrs", "-C", root, "-cf", part, "."], logFile);
  renameSync(part, o.tar);
  rmSync(root, { recursive: true, force: true });
  const seconds = (Date.now() - started) / 1000;
  writeFileSync(
    join(o.dir, "meta.json"),
    `${JSON.stringify({ suite: o.suite, packages: o.packages, mirror: o.mirror, builtAt: new Date().toISOString(), buildSeconds: seconds, tarBytes: statSync(o.tar).size }, null, 2)}\n`,
  );
  writeFileSync(join(o.dir, ".complete"), "");
  log(
    `Debian ${o.suite} base made in ${seconds.toFixed(1)} s (${(statSync(o.tar).size / 1e6).toFixed(0)} MB)`,
  );
}

/** Runs a command with its output appended to `logFile`; on failure the error carries the log's tail. */
function runLogged(
  command: string,
  args: string[],
  logFile: string,
  opts: { env?: NodeJS.ProcessEnv; progress?: (line: string) => void } = {},
): Promise<void> {
  mkdirSync(dirname(logFile), { recursive: true });
  return new Promise((resolve, reject) => {
    const fd = openSync(logFile, "a");
    const child = spawn(command, args, {
      env: opts.env ?? process.env,
      stdio: ["ignore", opts.progress ? "pipe" : fd, opts.progress ? "pipe" : fd],
    });
    if (opts.progress) {
      let buf = "";
      const onData = (d: Buffer) => {
        writeFileSync(logFile, d, { flag: "a" });
        buf += d.toString();
        const lines = buf.split("\n");
        buf = lines.pop() ?? "";
        for (const l of lines) opts.progress?.(l);
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
    }
    child.on("error", (err) => {
      closeSync(fd);
      reject(new Error(`${command}: ${err.message}`));
    });
    child.on("close", (code) => {
      closeSync(fd);
      if (code === 0) return resolve();
      const tailText = readFileSync(logFile, "utf8").split("\n").slice(-40).join("\n");
      reject(
        new Error(
          `${basename(command)} ${args.join(" ")} failed (exit ${code}); log ${logFile}:\n${tailText}`,
        ),
      );
    });
  });
}

// ------------------------------------------------------------------------------------------------ build

export interface BuildSpec {
  /** Short name: logs and the cache directory. */
  name: string;
  /** The tag. */
  ref: string;
  /** The build context directory. */
  context: string;
  /** Default `<context>/Dockerfile`. */
  dockerfile?: string;
  /** The base image, passed as the build arg BASE_IMAGE; its key is part of this image's key. */
  base?: Image;
  /** Build args: passed to docker build and part of the key. */
  buildArgs?: Record<string, string>;
  /**
   * Inputs the context does not show (the digest of a file served to the build): part of the key. With
   * `serve`, the build args it returns (a loopback URL with a fresh port) are passed but not hashed.
   */
  keyInputs?: Record<string, string>;
  /** Started only when a build is needed, closed afterwards: e.g. a file server on a loopback port. */
  serve?: () => Promise<{ buildArgs: Record<string, string>; close: () => Promise<void> }>;
  /** Build without Docker's layer cache (a cold build, for measuring one). */
  noCache?: boolean;
}

/**
 * The files of a build context that Docker sends, by the context's .dockerignore (Docker's own matching,
 * @balena/dockerignore): path, mode and content hash of each. Directories are skipped the way the docker
 * CLI skips them: when ignored and no `!` pattern reaches inside.
 */
export function contextDigest(context: string): string {
  const ignoreFile = join(context, ".dockerignore");
  const patterns = existsSync(ignoreFile)
    ? readFileSync(ignoreFile, "utf8")
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith("#"))
    : [];
  // a CommonJS module whose typings declare an ES default export: the factory is also its own `.default`
  const ig = dockerignore.default({ ignorecase: false }).add(patterns);
  const exceptions = patterns.filter((p) => p.startsWith("!")).map((p) => p.slice(1).replace(/^\/+/, ""));
  const entries: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      const rel = relative(context, full);
      const st = lstatSync(full);
      const ignored = ig.ignores(rel);
      if (st.isDirectory()) {
        if (
          ignored &&
          !exceptions.some((e) => `${e}/`.startsWith(`${rel}/`) || /[*?[]/.test(e.split("/")[0] ?? ""))
        )
          continue;
        walk(full);
      } else if (!ignored) {
        const what = st.isSymbolicLink() ? `link:${readlinkSync(full)}` : sha256(readFileSync(full));
        entries.push(`${rel}\0${st.mode & 0o777}\0${what}`);
      }
    }
  };
  walk(context);
  return sha256(entries.join("\n"));
}

interface CacheMeta {
  name: string;
  ref: string;
  id: string;
  key: string;
  builtAt: string;
  buildSeconds: number;
  tarBytes: number;
  sizeBytes: number;
}

/**
 * Builds the image with `docker build` unless the cache holds one made from the same inputs, and keeps it
 * as a `docker save` tar. Cached: no daemon needed (call ensureLoaded() to run it in Docker).
 */
export async function buildImage(spec: BuildSpec): Promise<BuiltImage> {
  const dockerfile = spec.dockerfile ?? join(spec.context, "Dockerfile");
  const buildArgs: Record<string, string> = { ...spec.buildArgs };
  if (spec.base) buildArgs.BASE_IMAGE = spec.base.ref;
  const sorted = (o: Record<string, string> | undefined) =>
    Object.entries(o ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const key = sha256(
    JSON.stringify({
      RECIPE,
      ref: spec.ref,
      dockerfile: readFileSync(dockerfile, "utf8"),
      context: contextDigest(spec.context),
      // the base enters by its key, not by its ref or id (an import of the same tar gets a new id)
      buildArgs: sorted({
        ...buildArgs,
        BASE_IMAGE: spec.base ? spec.base.key : (buildArgs.BASE_IMAGE ?? ""),
      }),
      keyInputs: sorted(spec.keyInputs),
      builder: process.env.LIVY_IMAGE_BUILDKIT === "1" ? "buildkit" : "classic",
    }),
  ).slice(0, 16);
  const dir = join(imagesCacheDir(), `${spec.name}-${key}`);
  const tar = join(dir, "image.tar");
  const metaFile = join(dir, "meta.json");
  const cached = (): BuiltImage | null => {
    if (!existsSync(metaFile) || !existsSync(tar)) return null;
    const meta = JSON.parse(readFileSync(metaFile, "utf8")) as CacheMeta;
    return { ...meta, format: "saved", tar, cached: true };
  };
  const hit = cached();
  if (hit) return hit;
  // one build of these inputs at a time on this machine; whoever waited finds it in the cache
  const release = await lock(`${dir}.lock`, `building ${spec.ref}`);
  try {
    return cached() ?? (await buildLocked(spec, { dockerfile, buildArgs, key, dir, tar, metaFile }));
  } finally {
    release();
  }
}

async function buildLocked(
  spec: BuildSpec,
  o: {
    dockerfile: string;
    buildArgs: Record<string, string>;
    key: string;
    dir: string;
    tar: string;
    metaFile: string;
  },
): Promise<BuiltImage> {
  const { key, dir, tar } = o;
  const sorted = (r: Record<string, string> | undefined) =>
    Object.entries(r ?? {}).sort(([a], [b]) => a.localeCompare(b));
  await ensureDocker();
  if (spec.base) await ensureLoaded(spec.base);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const logFile = join(dir, "build.log");
  const iidFile = join(dir, "iid");
  const local = localRef({ ref: spec.ref, format: "saved", tar, key });
  const started = Date.now();
  const served = spec.serve ? await spec.serve() : null;
  log(`docker build ${spec.ref} (${spec.name}; log ${logFile})`);
  try {
    const args = [
      "build",
      "-f",
      o.dockerfile,
      "-t",
      local,
      "--iidfile",
      iidFile,
      "--label",
      `${LABEL_KEY}=${key}`,
    ];
    if (spec.noCache) args.push("--no-cache");
    for (const [k, v] of [...sorted(o.buildArgs), ...sorted(served?.buildArgs)])
      args.push("--build-arg", `${k}=${v}`);
    args.push(spec.context);
    await runLogged(dockerCli(), args, logFile, {
      env: dockerEnv(),
      progress: (line) => {
        if (/^Step \d+\/\d+ : (FROM|RUN|COPY|ADD)/.test(line)) log(`${spec.name}: ${line.slice(0, 110)}`);
      },
    });
  } finally {
    await served?.close();
  }
  const id = readFileSync(iidFile, "utf8").trim();
  if (!/^sha256:[0-9a-f]{64}$/.test(id))
    throw new Error(`docker build ${spec.ref}: no image id (log ${logFile})`);
  // Saved under the name users use (ref). Another checkout may move that tag between our `docker tag` and
  // `docker save`: the archive's config digest says which image it holds; try again when it is not ours.
  const part = `${tar}.part`;
  for (let attempt = 1; ; attempt++) {
    await docker(["tag", id, spec.ref]);
    await docker(["save", "-o", part, spec.ref], { timeoutMs: 900_000 });
    if ((await savedConfigDigest(part)) === id) break;
    if (attempt === 3) throw new Error(`docker save ${spec.ref}: the archive holds another image than ${id}`);
  }
  renameSync(part, tar);
  const meta: CacheMeta = {
    name: spec.name,
    ref: spec.ref,
    id,
    key,
    builtAt: new Date().toISOString(),
    buildSeconds: Math.round((Date.now() - started) / 100) / 10,
    tarBytes: statSync(tar).size,
    sizeBytes: Number(await docker(["image", "inspect", "--format", "{{.Size}}", id])),
  };
  writeFileSync(o.metaFile, `${JSON.stringify(meta, null, 2)}\n`);
  log(
    `${spec.ref} built in ${meta.buildSeconds} s: ${(meta.sizeBytes / 1e6).toFixed(0)} MB unpacked, tar ${(meta.tarBytes / 1e6).toFixed(0)} MB`,
  );
  await pruneOld(spec.name, dir);
  return { ...meta, format: "saved", tar, cached: false };
}

/** The config digest of the (single) image in a `docker save` archive, `sha256:...`. */
async function savedConfigDigest(archive: string): Promise<string | null> {
  const { stdout } = await execFileP("tar", ["-xOf", archive, "manifest.json"], { maxBuffer: 1 << 20 });
  const config = (JSON.parse(stdout) as Array<{ Config?: string }>)[0]?.Config ?? "";
  const hex = /([0-9a-f]{64})/.exec(config)?.[1];
  return hex ? `sha256:${hex}` : null;
}

/**
 * Keeps the newest few builds of an image in the cache (other checkouts may still want theirs) and removes
 * the rest, with their images in Docker when nothing else uses them.
 */
async function pruneOld(name: string, keep: string, keepCount = 3): Promise<void> {
  const root = imagesCacheDir();
  const prefix = `${name}-`;
  const builds = readdirSync(root)
    .filter((d) => d.startsWith(prefix) && /^[0-9a-f]{16}$/.test(d.slice(prefix.length)))
    .map((d) => join(root, d))
    .filter((d) => d !== keep && existsSync(join(d, "meta.json")))
    .map((d) => ({ d, meta: JSON.parse(readFileSync(join(d, "meta.json"), "utf8")) as CacheMeta }))
    .sort((a, b) => b.meta.builtAt.localeCompare(a.meta.builtAt));
  for (const { d, meta } of builds.slice(keepCount - 1)) {
    rmSync(d, { recursive: true, force: true });
    // its keyed tag, then the image unless another tag (ref, now another build's) or a container uses it
    await docker(["rmi", localRef({ ref: meta.ref, format: "saved", tar: "", key: meta.key })]).catch(
      () => "",
    );
  }
}

// ----------------------------------------------------------------------------------------- containerd

export interface ContainerdTarget {
  /** containerd's socket. */
  address: string;
  /** Default `k8s.io`, the namespace the kubelet's CRI uses. */
  namespace?: string;
  /** Default `ctr` on PATH. */
  ctr?: string;
}

async function ctr(target: ContainerdTarget, args: string[], timeoutMs = 600_000): Promise<string> {
  const bin = target.ctr ?? "ctr";
  const full = ["--address", target.address, "--namespace", target.namespace ?? "k8s.io", ...args];
  try {
    return (await execFileP(bin, full, { maxBuffer: 64 << 20, timeout: timeoutMs })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${bin} ${full.join(" ")}: ${(e.stderr || e.message).trim()}`);
  }
}

/**
 * Imports an image's tar into a containerd (unpacked, so a kubelet can start it with imagePullPolicy
 * IfNotPresent or Never), unless that containerd already has it under the same name with the same config.
 * Returns whether it imported.
 */
export async function importImage(image: BuiltImage, target: ContainerdTarget): Promise<boolean> {
  const listed = await ctr(target, ["images", "list", `name==${image.ref}`], 60_000);
  const digest = /\s(sha256:[0-9a-f]{64})\s/.exec(listed.split("\n")[1] ?? "")?.[1];
  if (digest) {
    try {
      const manifest = JSON.parse(await ctr(target, ["content", "get", digest], 60_000)) as {
        config?: { digest?: string };
      };
      if (manifest.config?.digest === image.id) return false;
    } catch {
      // an index or unreadable manifest: import again
    }
  }
  const started = Date.now();
  await ctr(target, ["images", "import", image.tar]);
  log(`imported ${image.ref} into ${target.address} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return true;
}

// ------------------------------------------------------------------------------------ project images

/** The names users build and the chart and operator use by default (docs/install.md). */
export function projectImageRefs(): { operator: string; livy: string } {
  const v = versions();
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
  return {
    operator: `ghcr.io/livy-operator/livy-operator:${pkg.version}`,
    livy: `ghcr.io/livy-operator/livy-server:${v.LIVY_VERSION}-spark-${v.SPARK_VERSION}`,
  };
}

/** Serves exactly these paths (a file, or bytes) on a free port of 127.0.0.1 until closed. */
async function serveFiles(
  files: Record<string, { file: string } | { data: string }>,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const what = files[(req.url ?? "").split("?")[0] ?? ""];
    if (!what || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404).end();
      return;
    }
    const size = "file" in what ? statSync(what.file).size : Buffer.byteLength(what.data);
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
    if (req.method === "HEAD") res.end();
    else if ("file" in what) createReadStream(what.file).pipe(res);
    else res.end(what.data);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * The Apache Livy release zip for the Livy image, with its SHA-512: LIVY_DISTRIBUTION when it names a zip,
 * else what build/find-livy.sh finds (the project's mirror, checked against its .sha512), else null.
 */
export async function livyReleaseZip(): Promise<{ zip: string; sha512: string } | null> {
  let found = process.env.LIVY_DISTRIBUTION || "";
  const finder = join(TESTBED_DIR, "build", "find-livy.sh");
  if (!found && existsSync(finder)) {
    found = await execFileP("bash", [finder]).then(
      (r) => r.stdout.trim(),
      () => "",
    );
  }
  if (!found || !existsSync(found) || !statSync(found).isFile()) return null;
  const sumFile = `${found}.sha512`;
  const fromFile = existsSync(sumFile)
    ? /^[0-9a-fA-F]{128}/.exec(readFileSync(sumFile, "utf8").trim())?.[0]
    : undefined;
  const sha512 = (fromFile ?? createHash("sha512").update(readFileSync(found)).digest("hex")).toLowerCase();
  return { zip: found, sha512 };
}

export interface ProjectImages {
  base: Image;
  operator: BuiltImage;
  /** null when no Livy release zip is available (the real-Livy suites are skipped then too). */
  livy: BuiltImage | null;
}

/**
 * The operator image (the repository's Dockerfile) and the Livy server image (deploy/livy-image), built
 * on the Debian base with the Dockerfiles users build, named as users name them; cached. The Livy release
 * is served to the build from a loopback port (LIVY_DIST_URL), with a .sha512 the Dockerfile checks.
 */
/** The Livy server image (deploy/livy-image) alone: for the suites that need no operator image. */
export async function livyServerImage(
  base: Image,
  release: { zip: string; sha512: string },
  noCache?: boolean,
): Promise<BuiltImage> {
  const name = `apache-livy-${versions().LIVY_VERSION}_2.12-bin.zip`;
  return await buildImage({
    name: "livy-server",
    ref: projectImageRefs().livy,
    context: join(REPO_ROOT, "deploy", "livy-image"),
    base,
    noCache,
    keyInputs: { livyZipSha512: release.sha512 },
    serve: async () => {
      // the digest beside the zip (sha512sum format), which the Dockerfile checks the zip against
      const srv = await serveFiles({
        [`/${name}`]: { file: release.zip },
        [`/${name}.sha512`]: { data: `${release.sha512}  ${name}\n` },
      });
      return { buildArgs: { LIVY_DIST_URL: `${srv.url}/${name}` }, close: srv.close };
    },
  });
}

export async function projectImages(
  opts: { livy?: boolean; noCache?: boolean } = {},
): Promise<ProjectImages> {
  const refs = projectImageRefs();
  // a warm run answers from the cache without Docker: the base is imported only when something is built
  const base = await debianBase();
  const release = opts.livy === false ? null : await livyReleaseZip();
  if (!release && opts.livy !== false)
    log("no Apache Livy release zip on this machine: the Livy server image is not built");
  // both at once: their downloads and unpacking overlap (the base is imported once, before either starts)
  const [operator, livy] = await Promise.all([
    buildImage({ name: "operator", ref: refs.operator, context: REPO_ROOT, base, noCache: opts.noCache }),
    release ? livyServerImage(base, release, opts.noCache) : Promise.resolve(null),
  ]);
  return { base, operator, livy };
}
