/**
 * The gateway behind the API server's aggregation layer: clients that have only a kubeconfig (any of its
 * credentials: client certificates, exec plugins, OIDC) reach a LivySession at
 *
 *   <API server>/apis/livy.dev/gateway/namespaces/<ns>/livysessions/<name>/proxy/<Livy path>
 *
 * The API server authenticates the caller, authorizes `<verb> livysessions/proxy` in livy.dev (the same
 * RBAC rule the gateway checks: one grant serves both doors), and forwards the request over TLS with its
 * front-proxy client certificate and the caller's identity in X-Remote-User/-Group/-Extra-* headers. The
 * API server's service proxy (`services/proxy`) would forward no identity at all: that is why the gateway
 * is registered as an aggregated API version (APIService gateway.livy.dev) instead. `proxy` is a
 * long-running subresource to the API server, so held requests are not cut by its request timeout.
 *
 * Here: the front proxy's trust (the extension-apiserver-authentication ConfigMap), the caller's identity
 * from the headers, the discovery document, and the serving certificate with the APIService's caBundle.
 */

import { X509Certificate } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import { GROUP } from "../api/index.ts";
import { CORE, KubeApiError, type KubeClient, resourcePath } from "../kube/client.ts";
import type { UserInfo } from "./auth.ts";
import { selfSignedCertificate } from "./selfsigned.ts";

/** The API version the gateway serves in the LivySession's own group (no resources of its own). */
export const GATEWAY_VERSION = "gateway";
export const GATEWAY_GROUP_VERSION = `${GROUP}/${GATEWAY_VERSION}`;
export const AGGREGATED_PREFIX = `/apis/${GATEWAY_GROUP_VERSION}`;
export const API_SERVICE_NAME = `${GATEWAY_VERSION}.${GROUP}`;

export interface FrontProxyConfig {
  /** PEM of the CA that signs the API server's front-proxy client certificate. */
  ca: string;
  /** CNs allowed to assert identities; empty: any certificate of that CA. */
  allowedNames: string[];
  usernameHeaders: string[];
  groupHeaders: string[];
  extraPrefixes: string[];
}

const jsonList = (v: string | undefined, dflt: string[]): string[] => {
  if (!v) return dflt;
  try {
    const parsed = JSON.parse(v) as unknown;
    return Array.isArray(parsed) ? parsed.map(String) : dflt;
  } catch {
    return dflt;
  }
};

/** The front proxy's settings as the API server publishes them for extension API servers. */
export function frontProxyFromConfigMap(data: Record<string, string> | undefined): FrontProxyConfig | null {
  const ca = data?.["requestheader-client-ca-file"];
  if (!ca) return null;
  return {
    ca,
    allowedNames: jsonList(data?.["requestheader-allowed-names"], []),
    usernameHeaders: jsonList(data?.["requestheader-username-headers"], ["X-Remote-User"]),
    groupHeaders: jsonList(data?.["requestheader-group-headers"], ["X-Remote-Group"]),
    extraPrefixes: jsonList(data?.["requestheader-extra-headers-prefix"], ["X-Remote-Extra-"]),
  };
}

export async function loadFrontProxy(kube: KubeClient): Promise<FrontProxyConfig> {
  const cm = await kube.get<{ data?: Record<string, string> }>(
    resourcePath(CORE.configMaps, "kube-system", "extension-apiserver-authentication"),
  );
  const cfg = frontProxyFromConfigMap(cm.data);
  if (!cfg)
    throw new Error(
      "the API server publishes no front-proxy CA (kube-system/extension-apiserver-authentication has no requestheader-client-ca-file): start it with --requestheader-client-ca-file and --proxy-client-cert-file, or turn the gateway's API server port off",
    );
  return cfg;
}

export type FrontProxyVerdict = { ok: true; user: UserInfo } | { ok: false; reason: string };

/**
 * The caller's identity, when the request came over a connection whose client certificate the front
 * proxy's CA verified (the TLS server is configured with that CA) and whose CN is allowed. Header names
 * are case-insensitive; extra keys are lower-cased and URL-decoded, as the API server encodes them.
 */
export function frontProxyUser(req: IncomingMessage, cfg: FrontProxyConfig): FrontProxyVerdict {
  const socket = req.socket as TLSSocket;
  if (!socket.authorized)
    return {
      ok: false,
      reason: "this port serves only the API server's aggregation layer (no front-proxy client certificate)",
    };
  const cn = socket.getPeerCertificate()?.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  if (cfg.allowedNames.length && !cfg.allowedNames.includes(name ?? ""))
    return { ok: false, reason: `client certificate ${name ?? "(no CN)"} may not assert identities` };
  // repeated headers (one X-Remote-Group per group) as a list: Node joins them with ", " in req.headers
  const values = (h: string) => req.headersDistinct[h.toLowerCase()] ?? [];
  const username = cfg.usernameHeaders.flatMap(values).find((v) => v.length > 0);
  if (!username) return { ok: false, reason: "the API server forwarded no user" };
  const groups = cfg.groupHeaders.flatMap(values);
  const extra: Record<string, string[]> = {};
  for (const [h, v] of Object.entries(req.headersDistinct)) {
    for (const prefix of cfg.extraPrefixes) {
      const p = prefix.toLowerCase();
      if (!h.startsWith(p) || v === undefined) continue;
      const key = decodeURIComponent(h.slice(p.length)).toLowerCase();
      extra[key] = [...(extra[key] ?? []), ...v];
    }
  }
  return {
    ok: true,
    user: { username, ...(groups.length ? { groups } : {}), ...(Object.keys(extra).length ? { extra } : {}) },
  };
}

/**
 * The gateway's own refusals through the API server, as a Kubernetes Status (what kubectl and client
 * libraries read) that still carries Livy's `msg` (what Livy clients read).
 */
export function statusBody(code: number, message: string) {
  const reasons: Record<number, string> = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    503: "ServiceUnavailable",
    504: "Timeout",
  };
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason: reasons[code] ?? "InternalError",
    code,
    msg: message,
  };
}

/** GET /apis/livy.dev/gateway: the version has no resources (it only forwards livysessions/proxy). */
export function discoveryDocument() {
  return { kind: "APIResourceList", apiVersion: "v1", groupVersion: GATEWAY_GROUP_VERSION, resources: [] };
}

/** What owns the serving certificate's Secret: the APIService that the chart installs with the gateway. */
export interface SecretOwner {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

/** The APIService as the serving Secret's owner (null when it does not exist: no owner is set then). */
export async function apiServiceOwner(kube: KubeClient, apiService: string): Promise<SecretOwner | null> {
  const svc = await kube.getOrNull<{ metadata?: { uid?: string } }>(
    `/apis/apiregistration.k8s.io/v1/apiservices/${apiService}`,
  );
  const uid = svc?.metadata?.uid;
  return uid ? { apiVersion: "apiregistration.k8s.io/v1", kind: "APIService", name: apiService, uid } : null;
}

/**
 * The serving certificate of the API-server port, shared by every replica through a Secret: read it, or
 * make it and create the Secret (of two replicas racing, the first create wins and the other reads it).
 * The gateway makes this Secret, not Helm, so `helm uninstall` would leave it behind: owned by the
 * APIService (a cluster-scoped owner of a namespaced object), the garbage collector deletes it with the
 * release. A Secret made before it had an owner is given one (same certificate).
 */
export async function servingCertificate(
  kube: KubeClient,
  secret: { namespace: string; name: string },
  dnsNames: string[],
  owner?: SecretOwner | null,
): Promise<{ cert: string; key: string }> {
  const path = resourcePath(CORE.secrets, secret.namespace, secret.name);
  const decode = (s: { data?: Record<string, string> } | null) => {
    const cert = s?.data?.["tls.crt"];
    const key = s?.data?.["tls.key"];
    if (!cert || !key) return null;
    const pem = { cert: Buffer.from(cert, "base64").toString(), key: Buffer.from(key, "base64").toString() };
    // a certificate for other names (the Service renamed) or about to expire is made again
    const x = new X509Certificate(pem.cert);
    const names = (x.subjectAltName ?? "").split(", ").map((n) => n.replace(/^DNS:/, ""));
    const fresh = Date.parse(x.validTo) - Date.now() > 30 * 86_400_000;
    return fresh && dnsNames.every((n) => names.includes(n)) ? pem : null;
  };
  const existing = await kube.getOrNull<{
    data?: Record<string, string>;
    metadata?: { resourceVersion?: string; ownerReferences?: Array<{ uid?: string }> };
  }>(path);
  const ok = decode(existing);
  const owned = !owner || (existing?.metadata?.ownerReferences ?? []).some((r) => r.uid === owner.uid);
  if (ok && owned) return ok;
  const made = ok ? { certPem: ok.cert, keyPem: ok.key } : selfSignedCertificate(dnsNames);
  const body = {
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/tls",
    metadata: {
      name: secret.name,
      namespace: secret.namespace,
      labels: { "app.kubernetes.io/name": "livy-gateway", "app.kubernetes.io/component": "gateway" },
      ...(owner ? { ownerReferences: [{ ...owner, blockOwnerDeletion: false }] } : {}),
      ...(existing?.metadata?.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}),
    },
    data: {
      "tls.crt": Buffer.from(made.certPem).toString("base64"),
      "tls.key": Buffer.from(made.keyPem).toString("base64"),
    },
  };
  try {
    if (existing) await kube.request("PUT", path, { body });
    else await kube.create(resourcePath(CORE.secrets, secret.namespace), body);
    return { cert: made.certPem, key: made.keyPem };
  } catch (err) {
    if (err instanceof KubeApiError && (err.isConflict || err.status === 409)) {
      const theirs = decode(await kube.getOrNull(path));
      if (theirs) return theirs;
    }
    throw err;
  }
}

/** Puts the serving certificate (its own root) into the APIService's caBundle when it differs. */
export async function ensureCaBundle(
  kube: KubeClient,
  apiService: string,
  certPem: string,
): Promise<boolean> {
  const path = `/apis/apiregistration.k8s.io/v1/apiservices/${apiService}`;
  const svc = await kube.getOrNull<{ spec?: { caBundle?: string } }>(path);
  if (!svc) throw new Error(`APIService ${apiService} not found`);
  const want = Buffer.from(certPem).toString("base64");
  if (svc.spec?.caBundle === want) return false;
  await kube.mergePatch(path, { spec: { caBundle: want, insecureSkipTLSVerify: false } });
  return true;
}
