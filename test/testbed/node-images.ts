/**
 * The images every real node gets at `up`: the pause image (the sandbox), CoreDNS, and the test bed's probe
 * (node/probe.go: an HTTP server and client, a resolver, for the node's own tests). No image registry is
 * reachable, so all are made here, each a FROM-scratch image of one static binary built by
 * build/go-components.sh, written as a `docker save` archive (manifest.json, the config, one layer) and
 * imported into the node's containerd. Cached in the build cache by the binary's version.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { cacheDir, type GoBinaries, nodeProgramHash, versions } from "./paths.ts";

const run = promisify(execFile);

export interface NodeImages {
  /** Image references as containerd names them after import (what pods and sandbox_image use). */
  pause: string;
  coredns: string;
  probe: string;
  /** Their `docker save` archives in the build cache. */
  tars: string[];
}

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

/**
 * Writes a `docker save` archive of a FROM-scratch image holding `binary` at /<name>, with `entrypoint`.
 * The tar is reproducible (owner 0, mtime 0): the same binary gives the same image ID.
 */
async function scratchImage(ref: string, binary: string, entrypoint: string[], out: string): Promise<void> {
  const work = mkdtempSync(join(cacheDir(), "images", ".build-"));
  try {
    const rootfs = join(work, "rootfs");
    mkdirSync(rootfs);
    writeFileSync(join(rootfs, basename(binary)), readFileSync(binary), { mode: 0o755 });
    const layer = join(work, "layer.tar");
    await run("tar", [
      "--sort=name",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "--mtime=@0",
      "-C",
      rootfs,
      "-cf",
      layer,
      ".",
    ]);
    const layerId = sha256(readFileSync(layer));
    const config = JSON.stringify({
      architecture: "amd64",
      os: "linux",
      created: "1970-01-01T00:00:00Z",
      config: { Entrypoint: entrypoint, Env: ["PATH=/"] },
      rootfs: { type: "layers", diff_ids: [`sha256:${layerId}`] },
      history: [
        { created: "1970-01-01T00:00:00Z", created_by: `livy-operator test bed: ${basename(binary)}` },
      ],
    });
    const configId = sha256(config);
    const pack = join(work, "pack");
    mkdirSync(join(pack, layerId), { recursive: true });
    renameSync(layer, join(pack, layerId, "layer.tar"));
    writeFileSync(join(pack, `${configId}.json`), config);
    writeFileSync(
      join(pack, "manifest.json"),
      JSON.stringify([{ Config: `${configId}.json`, RepoTags: [ref], Layers: [`${layerId}/layer.tar`] }]),
    );
    const tmp = `${out}.${process.pid}`;
    await run("tar", ["--sort=name", "--owner=0", "--group=0", "--mtime=@0", "-C", pack, "-cf", tmp, "."]);
    renameSync(tmp, out); // atomic: a concurrent `up` sees the whole archive or none
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export async function ensureNodeImages(bins: GoBinaries): Promise<NodeImages> {
  const dir = join(cacheDir(), "images");
  mkdirSync(dir, { recursive: true });
  const v = versions();
  const specs = [
    { name: "pause", tag: nodeProgramHash("pause"), binary: bins.pause },
    { name: "coredns", tag: `${v.COREDNS_VERSION}-${nodeProgramHash("coredns")}`, binary: bins.coredns },
    { name: "probe", tag: nodeProgramHash("probe"), binary: bins.probe },
  ];
  const tars: string[] = [];
  for (const s of specs) {
    if (!existsSync(s.binary))
      throw new Error(`${s.name}: ${s.binary} is missing (npm run testbed -- build)`);
    const tar = join(dir, `${s.name}-${s.tag}.tar`);
    if (!existsSync(tar)) await scratchImage(imageRef(s.name, s.tag), s.binary, [`/${s.name}`], tar);
    tars.push(tar);
  }
  const [pause, coredns, probe] = specs.map((s) => imageRef(s.name, s.tag)) as [string, string, string];
  return { pause, coredns, probe, tars };
}

const imageRef = (name: string, tag: string) => `docker.io/livy-testbed/${name}:${tag}`;
