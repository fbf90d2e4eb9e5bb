/**
 * What the gateway presents to a LivySession's Livy server: the per-session credential derived from the
 * key it shares with the operator (src/api/credential.ts), or, for a LivySession with `spec.auth` (a server
 * with its own authentication), the credentials of that Secret when the gateway may read Secrets.
 */
import { credentialUid, type LivySession, sessionCredential } from "../api/index.ts";
import { CORE, type KubeClient, resourcePath } from "../kube/client.ts";
import type { SessionKey } from "../kube/session-key.ts";
import { authFromSecret, type SecretLike } from "../livy/secret-auth.ts";

/** The Authorization header for a LivySession's server, or none. */
export async function upstreamAuthorization(
  obj: LivySession,
  deps: { key: SessionKey | null; kube: KubeClient; readAuthSecrets: boolean },
): Promise<Record<string, string>> {
  if (obj.spec.auth) {
    if (!deps.readAuthSecrets) return {};
    const secret = await deps.kube.getOrNull<SecretLike>(
      resourcePath(CORE.secrets, obj.metadata.namespace ?? "", obj.spec.auth.secretName),
    );
    const auth = authFromSecret(obj.spec.auth, secret);
    if (auth.type === "bearer") return { authorization: `Bearer ${auth.token}` };
    return { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}` };
  }
  const key = deps.key?.current;
  const uid = credentialUid(obj);
  if (!key || !uid) return {};
  return { authorization: `Bearer ${sessionCredential(key, uid)}` };
}
