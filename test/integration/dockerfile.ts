import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, isAbsolute, join } from "node:path";

/**
 * A small reader and replayer of Dockerfiles, for machines without a container engine: it reads the
 * instructions, and replays a stage's COPY lines (from the build context or from an earlier stage) and
 * the `npm ci`, `npm install`, `npm run` and `find <relative path>` commands of its RUN lines in a clean
 * directory per stage. Other RUN commands (package managers, `rm` of base-image files, `npm cache clean`)
 * would act on this machine instead of an image: they are reported as skipped, never run.
 */
export interface Instruction {
  op: string;
  args: string;
  line: number;
}

export interface Stage {
  name: string | null;
  index: number;
  from: string;
  workdir: string;
  env: Record<string, string>;
  user: string | null;
  entrypoint: string[] | null;
  exposed: string[];
  instructions: Instruction[];
}

export function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const logical: Instruction[] = [];
  const lines = text.split("\n");
  let buf = "";
  let start = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] ?? "";
    const trimmed = raw.trim();
    if (!buf && (trimmed === "" || trimmed.startsWith("#"))) continue;
    if (buf && trimmed.startsWith("#")) continue; // comment lines inside a continuation
    if (!buf) start = i + 1;
    if (trimmed.endsWith("\\")) {
      buf += `${trimmed.slice(0, -1)} `;
      continue;
    }
    buf += trimmed;
    const m = /^(\w+)\s+([\s\S]*)$/.exec(buf);
    if (!m?.[1]) throw new Error(`Dockerfile line ${start}: cannot parse "${buf}"`);
    logical.push({ op: m[1].toUpperCase(), args: (m[2] ?? "").trim(), line: start });
    buf = "";
  }
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  const expand = (s: string) =>
    s.replaceAll(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => {
      const k = a ?? b ?? "";
      return args[k] ?? "";
    });
  for (const ins of logical) {
    const stage = stages.at(-1);
    switch (ins.op) {
      case "ARG": {
        // before the first FROM: a global default; inside a stage: the stage's own instruction
        const [k, v] = ins.args.split("=", 2);
        if (k && !stage) args[k] = v ?? "";
        stage?.instructions.push(ins);
        break;
      }
      case "FROM": {
        const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
        if (!m?.[1]) throw new Error(`Dockerfile line ${ins.line}: FROM ${ins.args}`);
        stages.push({
          name: m[2] ?? null,
          index: stages.length,
          from: expand(m[1]),
          workdir: "/",
          env: {},
          user: null,
          entrypoint: null,
          exposed: [],
          instructions: [],
        });
        break;
      }
      default: {
        if (!stage) throw new Error(`Dockerfile line ${ins.line}: ${ins.op} before FROM`);
        stage.instructions.push(ins);
        if (ins.op === "WORKDIR") stage.workdir = ins.args;
        if (ins.op === "USER") stage.user = ins.args;
        if (ins.op === "EXPOSE") stage.exposed.push(...ins.args.split(/\s+/));
        if (ins.op === "ENTRYPOINT") stage.entrypoint = JSON.parse(ins.args) as string[];
        if (ins.op === "ENV") {
          for (const m of ins.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) {
            if (m[1]) stage.env[m[1]] = (m[2] ?? "").replace(/^"|"$/g, "");
          }
        }
      }
    }
  }
  return { args, stages };
}

/** The COPY lines of a stage: `--from` (a stage name or index) or the build context. */
export function copiesOf(stage: Stage): Array<{ from: string | null; sources: string[]; dest: string }> {
  return stage.instructions
    .filter((i) => i.op === "COPY")
    .map((i) => {
      const words = i.args.split(/\s+/);
      let from: string | null = null;
      const rest: string[] = [];
      for (const w of words) {
        if (w.startsWith("--from=")) from = w.slice("--from=".length);
        else if (w.startsWith("--"))
          continue; // --chown, --chmod, --link: no effect on content
        else rest.push(w);
      }
      const dest = rest.pop();
      if (!dest || rest.length === 0) throw new Error(`Dockerfile line ${i.line}: COPY ${i.args}`);
      return { from, sources: rest, dest };
    });
}

/** Context paths a .dockerignore in allowlist form (`*` then `!path` lines) lets through. */
export function dockerignoreAllows(ignoreText: string, path: string): boolean {
  const lines = ignoreText
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  let allowed = true;
  for (const l of lines) {
    const negate = l.startsWith("!");
    const pat = (negate ? l.slice(1) : l).replace(/^\.?\//, "").replace(/\/$/, "");
    const matches = pat === "*" || pat === "**" || path === pat || path.startsWith(`${pat}/`);
    if (matches) allowed = negate;
  }
  return allowed;
}

export interface Replay {
  /** Per stage, the directory holding its WORKDIR. */
  dirs: Map<Stage, string>;
  skipped: string[];
  ran: string[];
}

/**
 * Replays every stage: COPY into a clean directory per stage (its WORKDIR), then the `npm ci`, `npm install`,
 * `npm run` and relative `find` commands of its RUN lines in that directory.
 */
export function replay(
  dockerfile: { stages: Stage[] },
  context: string,
  opts: { ignore?: string; env?: NodeJS.ProcessEnv; log?: (s: string) => void } = {},
): Replay {
  const root = mkdtempSync(join(tmpdir(), "image-build-"));
  const dirs = new Map<Stage, string>();
  const skipped: string[] = [];
  const ran: string[] = [];
  const log = opts.log ?? (() => undefined);
  const stageBy = (ref: string) =>
    dockerfile.stages.find((s) => s.name === ref) ?? dockerfile.stages[Number(ref)];
  // container path -> host path in a stage's directory (only paths under WORKDIR are materialised)
  const hostPath = (stage: Stage, p: string) => {
    const abs = isAbsolute(p) ? p : join(stage.workdir, p);
    const rel = abs.startsWith(stage.workdir) ? abs.slice(stage.workdir.length) : null;
    if (rel === null) throw new Error(`stage ${stage.name ?? stage.index}: ${p} is outside WORKDIR`);
    return join(dirs.get(stage) ?? "", rel);
  };
  for (const stage of dockerfile.stages) {
    const dir = join(root, `stage-${stage.index}-${stage.name ?? "final"}`);
    mkdirSync(dir, { recursive: true });
    dirs.set(stage, dir);
    for (const ins of stage.instructions) {
      if (ins.op === "COPY") {
        const [c] = copiesOf({ ...stage, instructions: [ins] });
        if (!c) continue;
        const many = c.sources.length > 1 || c.dest.endsWith("/");
        for (const src of c.sources) {
          let from: string;
          if (c.from === null) {
            if (opts.ignore !== undefined && !dockerignoreAllows(opts.ignore, src.replace(/^\.\//, ""))) {
              throw new Error(`Dockerfile line ${ins.line}: ${src} is excluded by .dockerignore`);
            }
            from = join(context, src);
          } else {
            const other = stageBy(c.from);
            if (!other || !dirs.has(other))
              throw new Error(`Dockerfile line ${ins.line}: no stage ${c.from}`);
            from = hostPath(other, src);
          }
          if (!existsSync(from))
            throw new Error(`Dockerfile line ${ins.line}: ${src} does not exist (${from})`);
          const dest = hostPath(stage, c.dest);
          // Docker copies a directory's contents, and a file into a directory destination
          const target = statSync(from).isDirectory() ? dest : many ? join(dest, basename(src)) : dest;
          cpSync(from, target, { recursive: true });
        }
        log(`COPY ${ins.args}`);
      } else if (ins.op === "RUN") {
        for (const part of ins.args.split("&&").map((s) => s.trim())) {
          const words = part.split(/\s+/);
          const isNpm = words[0] === "npm" && ["ci", "install", "run"].includes(words[1] ?? "");
          // a find over a relative path only touches the stage's own directory
          const isLocalFind = words[0] === "find" && words[1] !== undefined && !words[1].startsWith("/");
          if (!isNpm && !isLocalFind) {
            skipped.push(`stage ${stage.name ?? stage.index}: ${part}`);
            continue;
          }
          log(`RUN ${part}`);
          try {
            execFileSync("sh", ["-c", part], {
              cwd: hostPath(stage, "."),
              env: { ...process.env, ...opts.env, ...stage.env },
              stdio: ["ignore", "pipe", "pipe"],
              maxBuffer: 64 << 20,
              encoding: "utf8",
            });
          } catch (err) {
            const e = err as { stdout?: string; stderr?: string; status?: number };
            const output = `${e.stdout ?? ""}${e.stderr ?? ""}`.trim().split("\n").slice(-40).join("\n");
            throw new Error(
              `Dockerfile line ${ins.line}, stage ${stage.name ?? stage.index}: \`${part}\` exited with ${e.status}:\n${output}`,
            );
          }
          ran.push(`stage ${stage.name ?? stage.index}: ${part}`);
        }
      }
    }
  }
  return { dirs, skipped, ran };
}

export function readDockerfile(path: string) {
  return parseDockerfile(readFileSync(path, "utf8"));
}
