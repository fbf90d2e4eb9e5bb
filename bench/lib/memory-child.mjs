// One measurement of `bench memory` (bench/memory.ts), in a process of its own: the compiled operator of
// one commit (argv[2], a bench/.build* directory), its caches filled with N LivySessions and their objects
// (argv[3]) served by an in-process stand-in for the API server's list and watch, only the kinds in
// argv[4] ("all" or a comma-separated list). Plain JavaScript on purpose: the operator runs compiled, and
// a TypeScript loader here would be counted as the operator's memory. Prints one JSON line.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [dir, nArg, kindsArg = "all", churnArg = "0"] = process.argv.slice(2);
// argv[5]: watch events to replay after the passes (MODIFIED, each decoded from its JSON text as the watch
// decoder does), then the resident set is read as it is, no GC forced: what bursts of events leave behind
const churn = Number(churnArg);
const n = Number(nArg);
const kinds = kindsArg === "all" ? null : new Set(kindsArg.split(","));
const mod = (p) => import(pathToFileURL(join(dir, p)).href);
const gc = () => {
  for (let i = 0; i < 3; i++) globalThis.gc();
};
const mib = (b) => Math.round((b / 2 ** 20) * 10) / 10;
const mem = () => {
  gc();
  const m = process.memoryUsage();
  return { rss: mib(m.rss), heapUsed: mib(m.heapUsed) };
};

const base = mem();
const { createController } = await mod("operator/controller.js");
const { createMetrics } = await mod("operator/metrics.js");
const { loadConfig } = await mod("operator/config.js");
const objects = await mod("operator/objects.js");
const { decide } = await mod("operator/decide.js");
const { Gatherer } = await mod("operator/gather.js");
const { default: pino } = await import("pino");
const modules = mem();

// What the API server holds for N LivySessions as the operator leaves them Ready: the operator's own
// objects (built by this commit's objects.js) with what the server adds (uid, resourceVersion,
// managedFields of the appliers, status; a Pod's spec from its template with the defaults filled in).
let rv = 1000;
const managed = (manager, obj) => [
  {
    manager,
    operation: "Apply",
    apiVersion: obj.apiVersion ?? "v1",
    time: "2026-11-27T00:00:00Z",
    fieldsType: "FieldsV1",
    fieldsV1: fieldsOf(obj),
  },
];
function fieldsOf(v) {
  if (!v || typeof v !== "object") return {};
  const out = {};
  for (const [k, x] of Object.entries(v)) out[`f:${k}`] = Array.isArray(x) ? {} : fieldsOf(x);
  return out;
}
const server = (obj, manager = "livy-operator") => ({
  ...obj,
  metadata: {
    ...obj.metadata,
    uid: crypto.randomUUID(),
    resourceVersion: String(rv++),
    creationTimestamp: "2026-11-27T00:00:00Z",
    managedFields: managed(manager, obj),
  },
});
const cond = (type, status, reason) => ({
  type,
  status,
  reason,
  message: `${reason} message`,
  lastTransitionTime: "2026-11-27T00:00:00Z",
  observedGeneration: 1,
});
const ns = "bench";
const items = { livysessions: [], deployments: [], services: [], configmaps: [], pods: [] };
for (let i = 0; i < n; i++) {
  const name = `s${String(i).padStart(5, "0")}`;
  const uid = crypto.randomUUID();
  const owner = { apiVersion: "livy.dev/v1alpha1", kind: "LivySession", name, namespace: ns, uid };
  const session = {
    apiVersion: "livy.dev/v1alpha1",
    kind: "LivySession",
    metadata: { name, namespace: ns, uid, generation: 1, finalizers: ["livy.dev/finalizer"] },
    spec: { kind: "pyspark", idleTimeout: "20s", startupTimeout: "10m" },
    status: {
      phase: "Ready",
      observedGeneration: 1,
      restarts: 0,
      startTime: "2026-11-27T00:00:00Z",
      readyTime: "2026-11-27T00:00:01Z",
      lastActivityTime: "2026-11-27T00:00:01Z",
      serverURL: `http://livy-${name}.${ns}.svc:8998`,
      sessionURL: `http://livy-${name}.${ns}.svc:8998/sessions/${i}`,
      livySessionId: i,
      livySessionState: "idle",
      conditions: [
        cond("Ready", "True", "Ready"),
        cond("ServerReady", "True", "ServerAvailable"),
        cond("SessionReady", "True", "SessionIdle"),
        cond("Idle", "False", "Active"),
      ],
    },
  };
  const applied = server(session, "kubectl");
  applied.metadata.uid = uid;
  items.livysessions.push(applied);
  const cm = objects.desiredConfigMap(owner, undefined);
  const dep = objects.desiredDeployment(
    owner,
    undefined,
    {
      image: "ghcr.io/livy-operator/livy:0.9.0",
      imagePullPolicy: "IfNotPresent",
      resources: { requests: { cpu: "10m", memory: "32Mi" } },
    },
    cm.metadata.annotations["livy.dev/spec-hash"] ?? "",
  );
  items.configmaps.push(server(cm));
  items.services.push(
    server({
      ...objects.desiredService(owner),
      spec: { ...objects.desiredService(owner).spec, clusterIP: "10.96.0.9" },
    }),
  );
  items.deployments.push({
    ...server(dep),
    status: {
      observedGeneration: 1,
      replicas: 1,
      updatedReplicas: 1,
      readyReplicas: 1,
      availableReplicas: 1,
      conditions: [
        cond("Available", "True", "MinimumReplicasAvailable"),
        cond("Progressing", "True", "NewReplicaSetAvailable"),
      ],
    },
  });
  const tpl = dep.spec.template;
  items.pods.push(
    server(
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { ...tpl.metadata, name: `livy-${name}-5d4f8-abcde`, namespace: ns },
        spec: {
          ...tpl.spec,
          nodeName: "kwok-node-0",
          serviceAccountName: "default",
          restartPolicy: "Always",
        },
        status: {
          phase: "Running",
          podIP: "10.0.0.1",
          hostIP: "10.0.0.2",
          startTime: "2026-11-27T00:00:00Z",
          conditions: [cond("Ready", "True", ""), cond("PodScheduled", "True", "")],
          containerStatuses: [
            {
              name: "livy",
              ready: true,
              restartCount: 0,
              image: "ghcr.io/livy-operator/livy:0.9.0",
              state: { running: { startedAt: "2026-11-27T00:00:00Z" } },
            },
          ],
        },
      },
      "kube-controller-manager",
    ),
  );
}
const watchers = new Map();
const plural = (path) => path.split("?")[0].split("/").pop();
const kube = {
  server: "https://bench.invalid",
  requestCounts: {},
  async get(path, opts) {
    const p = plural(path);
    const all = kinds && !kinds.has(p) ? [] : (items[p] ?? []);
    // serve copies in pages of the informer's limit, as the API server does (no shared objects)
    const from = Number(opts?.query?.continue ?? 0);
    const limit = Number(opts?.query?.limit ?? 500);
    const page = JSON.parse(JSON.stringify(all.slice(from, from + limit)));
    return {
      metadata: {
        resourceVersion: String(rv),
        ...(from + limit < all.length ? { continue: String(from + limit) } : {}),
      },
      items: page,
    };
  },
  async watch(path, _query, onEvent, signal) {
    watchers.set(plural(path), onEvent);
    await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
  },
};
const config = loadConfig(["--server-url-template", "http://livy-{name}.{namespace}.svc:8998"], {});
const log = pino({ level: "silent" });
const controller = createController({ kube, config, metrics: createMetrics(), log });
await controller.startInformers();
// the objects generated here go, so that what is left is what the operator holds
const sample = items.livysessions.map((s) => `${ns}/${s.metadata.name}`);
// a few of each kind's objects, as the API server sends them, for the watch events replayed below
const eventTexts = churn
  ? Object.entries(items).flatMap(([k, list]) => list.slice(0, 20).map((o) => [k, JSON.stringify(o)]))
  : [];
for (const k of Object.keys(items)) items[k] = [];
const filled = mem();

// One pass's own work (no I/O: the Livy answer is given): observe from the caches, decide.
const gather = new Gatherer({ kube, caches: controller.caches, config, livy: () => ({}) });
const livy = (id) => ({
  url: "http://x",
  session: {
    ok: true,
    value: {
      id,
      name: null,
      state: "idle",
      kind: "pyspark",
      appId: null,
      owner: null,
      proxyUser: null,
      log: [],
      appInfo: {},
    },
  },
  activity: { ok: true, value: { busy: false, latestMs: 0 } },
});
const passes = Math.min(2000, Math.max(200, n));
let passUs = null;
let passWallUs = null;
if (!kinds) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < passes; i++) {
    const key = sample[(i * 7919) % sample.length];
    const obj = controller.caches.sessions.get(key);
    const o = await gather.observe(obj, {}, undefined);
    const d = decide(o);
    if ("observe" in d) decide({ ...o, livy: livy(obj.status.livySessionId) });
  }
  const cpu = process.cpuUsage(c0);
  passUs = Math.round((cpu.user + cpu.system) / passes);
  passWallUs = Math.round(((performance.now() - t0) * 1000) / passes);
}
let churned = null;
if (churn && !kinds) {
  for (let i = 0; i < churn; i++) {
    const [k, text] = eventTexts[i % eventTexts.length];
    const e = JSON.parse(`{"type":"MODIFIED","object":${text}}`);
    e.object.metadata.resourceVersion = String(rv++);
    watchers.get(k)?.(e);
    if (i % 100 === 99) await new Promise((r) => setImmediate(r));
  }
  const status = readFileSync("/proc/self/status", "utf8");
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
  const { heapTotal, heapUsed } = process.memoryUsage();
  churned = {
    events: churn,
    rss: mib(kb("VmRSS") * 1024),
    peakRss: mib(kb("VmHWM") * 1024),
    heapTotal: mib(heapTotal),
    heapUsed: mib(heapUsed),
  };
}
await controller.stop();
process.stdout.write(
  `${JSON.stringify({ n, kinds: kindsArg, base, modules, filled, passUs, passWallUs, passes, churned })}\n`,
);
process.exit(0);
