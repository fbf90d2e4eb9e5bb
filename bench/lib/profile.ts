/** Summarises a V8 .cpuprofile (node --cpu-prof): where the samples' self time went, by function and by file. */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { REPO_ROOT } from "./report.ts";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  wallS: number;
  /** Sampled time that was not idle. */
  busyS: number;
  byFunction: Array<{ fn: string; where: string; selfMs: number; pct: number }>;
  byFile: Array<{ file: string; selfMs: number; pct: number }>;
  /** Inclusive time of the functions under src/ (what they and everything they call cost). */
  inclusiveSrc: Array<{ fn: string; where: string; totalMs: number; pct: number }>;
}

function where(cf: CallFrame): string {
  if (!cf.url) return "(native)";
  const path = cf.url.replace(/^file:\/\//, "");
  const rel = relative(REPO_ROOT, path);
  // the compiled operator (bench/.build) maps one to one onto src/
  const short = rel.startsWith("..")
    ? path
    : rel.replace(/^node_modules\//, "npm:").replace(/^bench\/\.build\//, "src/");
  return `${short}:${cf.lineNumber + 1}`;
}

export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  const idle = new Set(["(idle)", "(program)"]);
  let busy = 0;
  const fnAgg = new Map<string, { fn: string; where: string; selfMs: number }>();
  const fileAgg = new Map<string, number>();
  const incl = new Map<string, { fn: string; where: string; totalMs: number }>();
  for (const [id, ms] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const cf = n.callFrame;
    if (idle.has(cf.functionName)) continue;
    busy += ms;
    const w = where(cf);
    const key = `${cf.functionName}@${w}`;
    const f = fnAgg.get(key) ?? { fn: cf.functionName || "(anonymous)", where: w, selfMs: 0 };
    f.selfMs += ms;
    fnAgg.set(key, f);
    const fileKey =
      w === "(native)"
        ? cf.functionName
        : w.replace(/:\d+$/, "").replace(/^(npm:[^/]+(?:\/[^/]+)?)\/.*$/, "$1");
    fileAgg.set(fileKey, (fileAgg.get(fileKey) ?? 0) + ms);
    // inclusive time for each distinct src/ frame on the stack
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const c = byId.get(cur)?.callFrame;
      if (!c) break;
      const cw = where(c);
      if (!cw.startsWith("src/")) continue;
      const k = `${c.functionName}@${cw}`;
      if (seen.has(k)) continue;
      seen.add(k);
      const e = incl.get(k) ?? { fn: c.functionName || "(anonymous)", where: cw, totalMs: 0 };
      e.totalMs += ms;
      incl.set(k, e);
    }
  }
  const pct = (ms: number) => Math.round((ms / Math.max(busy, 1e-9)) * 1000) / 10;
  return {
    file,
    wallS: (p.endTime - p.startTime) / 1e6,
    busyS: busy / 1000,
    byFunction: [...fnAgg.values()]
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, top)
      .map((f) => ({ ...f, selfMs: Math.round(f.selfMs), pct: pct(f.selfMs) })),
    byFile: [...fileAgg.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([file, ms]) => ({ file, selfMs: Math.round(ms), pct: pct(ms) })),
    inclusiveSrc: [...incl.values()]
      .sort((a, b) => b.totalMs - a.totalMs)
      .slice(0, top)
      .map((f) => ({ ...f, totalMs: Math.round(f.totalMs), pct: pct(f.totalMs) })),
  };
}

export function newestProfile(dir: string): string | null {
  try {
    const files = readdirSync(dir)
      .filter((f) => f.endsWith(".cpuprofile"))
      .sort();
    const last = files[files.length - 1];
    return last ? join(dir, last) : null;
  } catch {
    return null;
  }
}

// `node bench/lib/profile.ts FILE.cpuprofile` prints the summary.
if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: node bench/lib/profile.ts FILE.cpuprofile\n");
    process.exit(2);
  }
  process.stdout.write(`${JSON.stringify(summarizeProfile(file), null, 2)}\n`);
}
