/**
 * The per-session credential: what a LivySession's Livy server demands of every request (its auth filter,
 * deploy/livy-image/auth), and what the operator and the gateway present. It is derived, not stored: an
 * HMAC of the LivySession's uid under a key the operator and the gateway share (a Secret in the operator's
 * namespace), so the gateway computes it without reading any Secret in users' namespaces. The operator
 * writes it into a Secret owned by the LivySession, which the Livy pod mounts. A new key (the Secret
 * replaced) gives every session a new credential: the operator rewrites the Secrets, the filter re-reads
 * its file, and the gateway re-reads the key when a server refuses it.
 */
import { createHmac, randomBytes } from "node:crypto";
import { serverName } from "./livysession.ts";

/** The Secret holding the shared key, in the operator's namespace: key `key`, 32 random bytes (base64). */
export const SESSION_KEY_SECRET_KEY = "key";
/** The per-session Secret (owned by the LivySession), key `token`. */
export const CREDENTIAL_SECRET_KEY = "token";
/** Where the Livy pod mounts the per-session Secret. */
export const CREDENTIAL_MOUNT_DIR = "/etc/livy/credential";
/** The class of the Livy auth filter (deploy/livy-image/auth), in the Livy image's jars/. */
export const CREDENTIAL_FILTER_CLASS = "dev.livyoperator.auth.SessionTokenFilter";

const DOMAIN = "livy-operator session credential v1";

export function credentialSecretName(name: string): string {
  return `${serverName(name)}-credential`;
}

/** A new shared key, base64. */
export function newSessionKey(): string {
  return randomBytes(32).toString("base64");
}

/** The credential of the LivySession with this uid: base64url(HMAC-SHA256(key, domain + uid)). */
export function sessionCredential(key: Buffer, uid: string): string {
  if (key.length < 16) throw new Error("the session key is shorter than 16 bytes");
  return createHmac("sha256", key).update(`${DOMAIN}\n${uid}`).digest("base64url");
}

/**
 * The uid a LivySession's credential derives from: its own, or, for a server taken over from a warm pool
 * (status.server), the uid recorded with it (status.serverUID: the pooled LivySession that started that
 * server and wrote its Secret). The server keeps the credential it was started with, so nothing is
 * rewritten at the hand-over (the kubelet would refresh a mounted Secret only after its sync period);
 * the uid is unique to that server and only holders of the key derive the credential from it.
 */
export function credentialUid(obj: {
  metadata: { uid?: string | undefined };
  status?: { server?: string | null | undefined; serverUID?: string | null | undefined } | undefined;
}): string | undefined {
  if (obj.status?.server) return obj.status.serverUID ?? undefined;
  return obj.metadata.uid;
}

/** The livy.conf entries that turn the filter on, reading the credential from the mounted Secret. */
export function credentialLivyConf(): Record<string, string> {
  return {
    "livy.server.auth.type": "session",
    "livy.server.auth.session.class": CREDENTIAL_FILTER_CLASS,
    "livy.server.auth.session.param.token-file": `${CREDENTIAL_MOUNT_DIR}/${CREDENTIAL_SECRET_KEY}`,
    "livy.server.auth.session.param.open-paths": "/version",
  };
}
