/**
 * What the operator keeps of the objects it watches (the informers' transforms), as controller-runtime's
 * cache transforms and metadata-only watches do. The caches hold one copy of every owned object of every
 * LivySession for the operator's whole life; a Deployment's pod template (the Livy container's command,
 * environment, volumes), a ConfigMap's files and a Pod's spec are most of their bytes, and nothing the
 * operator decides reads them: decide() compares the spec-hash annotation (objects.ts upToDate), and reads
 * a Deployment's replicas and status and a Pod's status (observe.ts DeploymentLike, PodLike). Whatever a
 * decision starts to read of these objects must be kept here too (cached.test.ts checks the fields that
 * observe.ts reads survive).
 */
import type { KubeObject } from "../kube/client.ts";
import { SESSION_LABEL } from "./objects.ts";

type Meta = NonNullable<KubeObject["metadata"]>;

const META_FIELDS = [
  "name",
  "namespace",
  "resourceVersion",
  "generation",
  "labels",
  "annotations",
  "deletionTimestamp",
  "creationTimestamp",
] as const satisfies ReadonlyArray<keyof Meta>;

/**
 * The metadata decisions read of an owned object or pod: not managedFields (the largest part of an applied
 * object's), uid, ownerReferences or finalizers (the owner is found by the session label; at 10,000
 * LivySessions these were ~3 MiB per kind).
 */
export function keptMetadata(m: Meta | undefined): Meta {
  const out: Record<string, unknown> = {};
  if (!m) return out;
  for (const k of META_FIELDS) if (m[k] !== undefined) out[k] = m[k];
  return out as Meta;
}

/** A Service, ConfigMap or NetworkPolicy: only its metadata (labels, spec-hash annotation, deletion). */
export function keepMetadataOnly(o: KubeObject): KubeObject {
  return { apiVersion: o.apiVersion, kind: o.kind, metadata: keptMetadata(o.metadata) } as KubeObject;
}

/** A Deployment: metadata, spec.replicas and status (observe.ts observeServer). */
export function keepDeployment(o: KubeObject): KubeObject {
  const d = o as KubeObject & { spec?: { replicas?: number }; status?: unknown };
  return {
    ...keepMetadataOnly(o),
    ...(d.spec?.replicas !== undefined ? { spec: { replicas: d.spec.replicas } } : {}),
    ...(d.status !== undefined ? { status: d.status } : {}),
  } as KubeObject;
}

/** A Pod: metadata and status (observe.ts observeServer, serverPodLost); its spec only for the node. */
export function keepPod(o: KubeObject): KubeObject {
  const p = o as KubeObject & { spec?: { nodeName?: string }; status?: unknown };
  return {
    ...keepMetadataOnly(o),
    ...(p.spec?.nodeName !== undefined ? { spec: { nodeName: p.spec.nodeName } } : {}),
    ...(p.status !== undefined ? { status: p.status } : {}),
  } as KubeObject;
}

/** The LivySession an owned object or pod belongs to, as `namespace/name` (the pods' index). */
export function ownerKey(o: KubeObject): string | undefined {
  const owner = o.metadata?.labels?.[SESSION_LABEL];
  return owner && o.metadata?.namespace ? `${o.metadata.namespace}/${owner}` : undefined;
}
