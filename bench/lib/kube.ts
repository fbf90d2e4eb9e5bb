/** LivySessions and the objects the operator owns, from the benchmark's side of the API server. */
import {
  API_VERSION,
  KIND,
  LABEL_MANAGED_BY,
  LABEL_SESSION,
  type LivySession,
  MANAGED_BY,
} from "../../src/api/index.ts";
import {
  CORE,
  type KubeClient,
  type KubeList,
  type KubeObject,
  resourcePath,
} from "../../src/kube/client.ts";
import { Informer } from "../../src/kube/informer.ts";
import { LIVYSESSIONS } from "../../src/operator/reconciler.ts";
import { KWOK_NAMESPACE_ANNOTATIONS } from "../../test/testbed/controlplane.ts";

export const BENCH_FIELD_MANAGER = "livy-bench";
export const MANAGED = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;

export function sessionPath(ns: string, name?: string, sub?: string): string {
  return resourcePath(LIVYSESSIONS, ns, name, sub);
}

export async function createNamespace(kube: KubeClient, prefix: string): Promise<string> {
  const ns = `${prefix}-${Date.now().toString(36)}`;
  // its pods go to the kwok node (the benchmarks measure the operator against fake pods)
  await kube.create("/api/v1/namespaces", {
    metadata: { name: ns, annotations: { ...KWOK_NAMESPACE_ANNOTATIONS } },
  });
  return ns;
}

export async function applySession(
  kube: KubeClient,
  ns: string,
  name: string,
  spec: Record<string, unknown>,
  annotations?: Record<string, string>,
): Promise<LivySession> {
  return await kube.apply<LivySession>(
    sessionPath(ns, name),
    {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name, namespace: ns, ...(annotations ? { annotations } : {}) },
      spec,
    },
    BENCH_FIELD_MANAGER,
  );
}

/** The status contract's readers, under the names the benchmarks use. */
export { isIdle, isReady } from "../../src/api/index.ts";

export interface DeploymentLike extends KubeObject {
  status?: { availableReplicas?: number; readyReplicas?: number };
}

/** A watch over one kind in one namespace, calling `on` with the bench's clock at each event. */
export function watchKind<T extends KubeObject>(
  kube: KubeClient,
  path: string,
  on: (type: "add" | "update" | "delete", obj: T, at: number) => void,
  labelSelector?: string,
): Informer<T> {
  const inf = new Informer<T>(kube, { path, ...(labelSelector ? { labelSelector } : {}) });
  inf.addHandlers({
    onAdd: (o) => on("add", o, performance.now()),
    onUpdate: (_p, o) => on("update", o, performance.now()),
    onDelete: (o) => on("delete", o, performance.now()),
  });
  inf.start();
  return inf;
}

export interface Leftovers {
  deployments: number;
  services: number;
  configMaps: number;
  pods: number;
  livySessions: number;
}

/** Objects with the operator's managed-by label (and LivySessions) left in `ns`. */
export async function leftovers(kube: KubeClient, ns: string): Promise<Leftovers> {
  const count = async (path: string, selector?: string) =>
    (
      await kube.get<KubeList<KubeObject>>(path, {
        query: { ...(selector ? { labelSelector: selector } : {}), limit: 100000 },
      })
    ).items.length;
  const [deployments, services, configMaps, pods, livySessions] = await Promise.all([
    count(resourcePath(CORE.deployments, ns), MANAGED),
    count(resourcePath(CORE.services, ns), MANAGED),
    count(resourcePath(CORE.configMaps, ns), MANAGED),
    count(resourcePath(CORE.pods, ns), LABEL_SESSION),
    count(sessionPath(ns)),
  ]);
  return { deployments, services, configMaps, pods, livySessions };
}

/** Runs `fn` over `items` with at most `limit` in flight; returns per-item errors (never throws). */
export async function boundedAll<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<Array<{ item: T; error: unknown }>> {
  const errors: Array<{ item: T; error: unknown }> = [];
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      const item = items[i] as T;
      try {
        await fn(item, i);
      } catch (error) {
        errors.push({ item, error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return errors;
}

export async function waitUntil(
  what: string,
  pred: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 50,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await pred()) return true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  process.stderr.write(`[bench] gave up waiting for ${what} after ${timeoutMs} ms\n`);
  return false;
}
