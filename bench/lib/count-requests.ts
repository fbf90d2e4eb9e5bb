/**
 * Preloaded into the operator process (`node --import`) by the benchmarks: counts the HTTP requests the
 * process sends through undici (the Kubernetes client and the Livy client both use it), by target and
 * route, from undici's diagnostics channel, and serves the counts as JSON on 127.0.0.1:$BENCH_COUNT_PORT.
 * Nothing in the operator changes; the counts are the operator's own requests only. With
 * BENCH_COUNT_BY_OBJECT=1 it also counts by the object a request names (`byObject`, keyed
 * `<route key> <namespace>/<name>` for Kubernetes and `<route key> <session id or name>` for Livy), so that a
 * benchmark can count one LivySession's requests while others are busy (requests that name no object, such
 * as `POST events` or `GET /sessions`, are not in it).
 */
import { subscribe } from "node:diagnostics_channel";
import { createServer } from "node:http";

interface CreateMessage {
  request: { origin?: string | URL; method?: string; path?: string };
}

const kubeOrigin = process.env.BENCH_KUBE_ORIGIN ?? "";
const counts: Record<string, number> = {};
const byObjectOn = process.env.BENCH_COUNT_BY_OBJECT === "1";
const byObject: Record<string, number> = {};
/** Time from sending a request to its response headers, by the same keys: sum and count in ms. */
const latency: Record<string, { sumMs: number; n: number; maxMs: number }> = {};
const started = new WeakMap<object, { key: string; at: number }>();
let total = 0;

/** The object a request names: `ns/name` (Kubernetes) or the Livy session's id or name; "" for none. */
function objectOf(path: string, kube: boolean): string {
  const seg = (path.split("?")[0] ?? "").split("/").filter(Boolean);
  if (!kube) return seg[0] === "sessions" && seg[1] ? decodeURIComponent(seg[1]) : "";
  const i = seg[0] === "api" ? 2 : 3;
  if (seg[i] !== "namespaces" || seg.length <= i + 3) return "";
  return `${seg[i + 1]}/${seg[i + 3]}`;
}

/** `/apis/g/v/namespaces/ns/plural/name/status` → `plural/{name}/status`; Livy ids become `:id`. */
function route(path: string, kube: boolean): string {
  const [p = "", query = ""] = path.split("?");
  const seg = p.split("/").filter(Boolean);
  if (!kube)
    return `/${seg.map((s, i) => (/^\d+$/.test(s) ? ":id" : i === 1 && seg[0] === "sessions" ? ":name" : s)).join("/")}`;
  let i = seg[0] === "api" ? 2 : 3; // past /api/v1 or /apis/group/version
  if (seg[i] === "namespaces" && seg.length > i + 2) i += 2;
  const [plural = "", name, sub] = seg.slice(i);
  const watch = /(^|&)watch=(true|1)/.test(query);
  return `${plural}${name ? "/{name}" : ""}${sub ? `/${sub}` : ""}${watch ? " (watch)" : ""}`;
}

subscribe("undici:request:create", (msg) => {
  const { request } = msg as CreateMessage;
  const origin = String(request.origin ?? "");
  const kube = kubeOrigin !== "" && origin.replace(/\/$/, "") === kubeOrigin.replace(/\/$/, "");
  const key = `${kube ? "kube" : "livy"} ${request.method ?? "?"} ${route(request.path ?? "", kube)}`;
  counts[key] = (counts[key] ?? 0) + 1;
  if (byObjectOn) {
    const obj = objectOf(request.path ?? "", kube);
    if (obj) byObject[`${key} ${obj}`] = (byObject[`${key} ${obj}`] ?? 0) + 1;
  }
  total++;
  started.set(request, { key, at: performance.now() });
});

subscribe("undici:request:headers", (msg) => {
  const { request } = msg as CreateMessage;
  const s = started.get(request);
  if (!s) return;
  const ms = performance.now() - s.at;
  const l = latency[s.key] ?? { sumMs: 0, n: 0, maxMs: 0 };
  l.sumMs += ms;
  l.n++;
  if (ms > l.maxMs) l.maxMs = ms;
  latency[s.key] = l;
});

const port = Number(process.env.BENCH_COUNT_PORT ?? 0);
if (port > 0) {
  const server = createServer((_req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ total, counts, latency, ...(byObjectOn ? { byObject } : {}) }));
  });
  server.listen(port, "127.0.0.1");
  server.unref();
}
