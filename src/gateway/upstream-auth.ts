/**
 * What the gateway presents to a LivySession's Livy server: the per-session credential derived from the
 * key it shares with the operator (src/api/credential.ts), or, for a LivySession with `spec.auth` (a server
 * with its own authentication), the credentials of that Secret when the gateway may read Secrets.
 */
import type { Logger } from "pino";
import { type LivySession, SESSION_KEY_SECRET_KEY, sessionCredential } from "../api/index.ts";
import { CORE, KubeApiError, type KubeClient, resourcePath } from "../kube/client.ts";
import { authFromSecret, type SecretLike } from "../livy/secret-auth.ts";

export class SessionKey {
  readonly #kube: KubeClient;
  readonly #path: string;
  readonly #log: Logger;
  #key: Buffer | null = null;
  #timer: NodeJS.Timeout | null = null;
  #lastRefresh = 0;
  #refreshing: Promise<boolean> | null = null;

  constructor(kube: KubeClient, secret: { namespace: string; name: string }, log: Logger) {
    this.#kube = kube;
    this.#path = resourcePath(CORE.secrets, secret.namespace, secret.name);
    this.#log = log;
  }

  get current(): Buffer | null {
    return this.#key;
  }

  /** Reads the key now, then every `everyMs`. */
  async start(everyMs = 60_000): Promise<void> {
    await this.refresh(true);
    this.#timer = setInterval(() => void this.refresh(true), everyMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  /** Reads the Secret again (at most every 5 s unless forced); true when the key changed. */
  refresh(force = false): Promise<boolean> {
    if (!force && Date.now() - this.#lastRefresh < 5_000) return Promise.resolve(false);
    this.#refreshing ??= (async () => {
      this.#lastRefresh = Date.now();
      try {
        const s = await this.#kube.getOrNull<{ data?: Record<string, string> }>(this.#path);
        const b64 = s?.data?.[SESSION_KEY_SECRET_KEY];
        const next = b64 ? Buffer.from(b64, "base64") : null;
        if (!next || next.length < 16) {
          if (this.#key === null)
            this.#log.warn(
              { secret: this.#path },
              "no session key yet: Livy servers that demand a credential refuse the gateway",
            );
          return false;
        }
        const changed = !this.#key || !next.equals(this.#key);
        if (changed && this.#key) this.#log.info("the session key changed");
        this.#key = next;
        return changed;
      } catch (err) {
        this.#log.warn(
          { err: err instanceof KubeApiError ? err.message : String(err) },
          "cannot read the session key",
        );
        return false;
      } finally {
        this.#refreshing = null;
      }
    })();
    return this.#refreshing;
  }
}

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
  const uid = obj.metadata.uid;
  if (!key || !uid) return {};
  return { authorization: `Bearer ${sessionCredential(key, uid)}` };
}
