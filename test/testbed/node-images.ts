/**
 * The images every real node gets at `up`: the pause image (the sandbox), CoreDNS, and the test bed's probe
 * (node/probe.go: an HTTP server and client, a resolver, for the node's own tests). No image registry is
 * reachable, so all are made here: each is one static binary built by build/go-components.sh, in a
 * FROM-scratch image built with the project's image toolkit (images.ts: `docker build`, cached by its inputs,
 * saved to a tar) and imported into the node's containerd.
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { buildImage, imagesCacheDir } from "./images.ts";
import { type GoBinaries, nodeProgramHash, versions } from "./paths.ts";

export interface NodeImages {
  /** Image references as containerd names them after import (what pods and sandbox_image use). */
  pause: string;
  coredns: string;
  probe: string;
  /** Their `docker save` archives in the build cache. */
  tars: string[];
}

const imageRef = (name: string, tag: string) => `docker.io/livy-testbed/${name}:${tag}`;

/** A build context holding the binary and a FROM-scratch Dockerfile that runs it; made once, atomically. */
function scratchContext(name: string, tag: string, binary: string): string {
  const dir = join(imagesCacheDir(), "contexts", `node-${name}-${tag}`);
  if (existsSync(join(dir, "Dockerfile"))) return dir;
  const tmp = `${dir}.${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  copyFileSync(binary, join(tmp, basename(binary)));
  writeFileSync(
    join(tmp, "Dockerfile"),
    `FROM scratch\nCOPY ${basename(binary)} /${name}\nENTRYPOINT ["/${name}"]\n`,
  );
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another process made it meanwhile
  }
  return dir;
}

export async function ensureNodeImages(bins: GoBinaries): Promise<NodeImages> {
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
    const image = await buildImage({
      name: `node-${s.name}`,
      ref: imageRef(s.name, s.tag),
      context: scratchContext(s.name, s.tag, s.binary),
    });
    tars.push(image.tar);
  }
  const [pause, coredns, probe] = specs.map((s) => imageRef(s.name, s.tag)) as [string, string, string];
  return { pause, coredns, probe, tars };
}
