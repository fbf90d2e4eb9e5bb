/**
 * npm run bench -- images [--cold] [--n 5]
 *
 * The project's container images as the test bed builds them (test/testbed/images.ts, the repository's
 * Dockerfiles): size unpacked (what Docker reports), as the saved tar a node imports, and gzip-compressed
 * (about what a registry stores and a node pulls); the layers of each; the time of a warm build step (the
 * cache answers; what every `make test` after the first pays); with --cold also a cold build in a fresh
 * cache without Docker's layer cache (debootstrap, both docker builds, docker save), what a first CI run pays.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import {
  type BuiltImage,
  dockerCli,
  ensureDocker,
  ensureLoaded,
  localRef,
  projectImages,
} from "../test/testbed/images.ts";
import { type Args, type BenchBody, log } from "./lib/bench.ts";
import type { Table } from "./lib/report.ts";
import { median, round } from "./lib/stats.ts";

const run = promisify(execFile);
const mb = (bytes: number) => round(bytes / 1e6, 1);

async function gzipBytes(file: string): Promise<number> {
  const { stdout } = await run("sh", ["-c", 'gzip -6 -c "$1" | wc -c', "sh", file], { timeout: 900_000 });
  return Number(stdout.trim());
}

async function layers(ref: string): Promise<Array<[string, string]>> {
  const { stdout } = await run(dockerCli(), [
    "history",
    "--no-trunc",
    "--format",
    "{{.Size}}\t{{.CreatedBy}}",
    ref,
  ]);
  return stdout
    .trim()
    .split("\n")
    .map((l): [string, string] => {
      const [size = "", by = ""] = l.split("\t");
      const what = by
        .replace(/^\/bin\/sh -c (#\(nop\) )?/, "")
        .replace(/\s+/g, " ")
        .slice(0, 90);
      // the imported base has no history entry of its own
      return [size, what || "(the Debian base: docker import of the debootstrap root filesystem)"];
    })
    .filter(([size]) => size !== "0B");
}

export async function images(args: Args): Promise<BenchBody> {
  const cold = args.bool("cold");
  const n = args.num("n", 5);
  const docker = await ensureDocker();
  const results: Record<string, unknown> = { docker };
  const tables: Table[] = [];
  const notes: string[] = [];

  if (cold) {
    // a fresh cache (debootstrap again, nothing cached) and no Docker layer cache: a first CI run
    const tmp = mkdtempSync(join(tmpdir(), "bench-images-"));
    const prev = process.env.LIVY_TESTBED_CACHE;
    process.env.LIVY_TESTBED_CACHE = tmp;
    try {
      log(`cold build in ${tmp} (docker build --no-cache)`);
      const t0 = performance.now();
      const imgs = await projectImages({ noCache: true });
      const totalS = (performance.now() - t0) / 1000;
      const baseMeta = JSON.parse(readFileSync(join(dirname(imgs.base.tar), "meta.json"), "utf8")) as {
        buildSeconds: number;
      };
      results.cold = {
        totalS: round(totalS, 1),
        debootstrapS: round(baseMeta.buildSeconds, 1),
        operatorS: imgs.operator.buildSeconds,
        livyS: imgs.livy?.buildSeconds ?? null,
      };
      tables.push({
        title: "Cold build (fresh cache, docker build --no-cache; the two docker builds run at once)",
        columns: ["step", "seconds"],
        rows: [
          ["Debian base: debootstrap --variant=minbase, trimmed, tar", round(baseMeta.buildSeconds, 1)],
          ["operator image: docker build + docker save", imgs.operator.buildSeconds],
          ["Livy server image: docker build + docker save", imgs.livy?.buildSeconds ?? "not built"],
          ["all (projectImages(), wall clock)", round(totalS, 1)],
        ],
      });
    } finally {
      if (prev === undefined) delete process.env.LIVY_TESTBED_CACHE;
      else process.env.LIVY_TESTBED_CACHE = prev;
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  // warm: what the build step pays on every run once the cache holds both images
  const first = await projectImages();
  const warmMs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const again = await projectImages();
    warmMs.push(performance.now() - t0);
    if (!again.operator.cached || (again.livy && !again.livy.cached))
      throw new Error("a warm call built an image");
  }
  results.warmMs = warmMs.map((v) => round(v, 1));
  tables.push({
    title: `Warm build step (inputs hashed, both images found in the cache; N=${n})`,
    columns: ["median ms", "min ms", "max ms"],
    rows: [[round(median(warmMs), 1), round(Math.min(...warmMs), 1), round(Math.max(...warmMs), 1)]],
  });

  const built = [first.operator, first.livy].filter((b): b is BuiltImage => b !== null);
  const sizeRows: Array<Array<string | number>> = [];
  for (const b of built) {
    await ensureLoaded(b);
    log(`gzip -6 of ${b.tar}`);
    const gz = await gzipBytes(b.tar);
    results[b.name] = {
      ref: b.ref,
      id: b.id,
      unpackedBytes: b.sizeBytes,
      tarBytes: b.tarBytes,
      gzipBytes: gz,
      coldBuildS: b.buildSeconds,
      builtAt: (b as BuiltImage & { builtAt?: string }).builtAt,
    };
    sizeRows.push([b.ref, mb(b.sizeBytes), mb(b.tarBytes), mb(gz), b.buildSeconds]);
    tables.push({
      title: `Layers of ${b.ref} (docker history, newest first)`,
      columns: ["size", "created by"],
      rows: await layers(localRef(b)),
    });
  }
  tables.unshift({
    title: "Image sizes (MB = 10^6 bytes)",
    columns: ["image", "unpacked MB", "saved tar MB", "gzip -6 MB", "its last build s"],
    rows: sizeRows,
  });
  notes.push(
    "unpacked: Docker's image size (all layers, the 75 MB Debian base included); saved tar: the `docker save` " +
      "archive a node imports (`ctr images import`); gzip -6: that archive compressed, about what a registry " +
      "stores and a node pulls.",
    "its last build s: the docker build + docker save that made the cached image (load at that time not recorded).",
    `docker CLI ${docker.clientVersion} against dockerd ${docker.serverVersion}, classic builder (DOCKER_BUILDKIT=0).`,
  );
  return { params: { cold, n }, results, goals: [], tables, notes };
}
