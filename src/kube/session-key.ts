/**
 * The key the operator and the gateway share (src/api/credential.ts): a Secret in the operator's namespace,
 * made by the operator when missing, read by both and read again now and then (a replaced key is a
 * rotation: the operator rewrites every session's credential, the gateway presents the new one).
 */
import type { Logger } from "pino";
import { newSessionKey, SESSION_KEY_SECRET_KEY } from "../api/index.ts";
import { CORE, KubeApiError, type KubeClient, resourcePath } from "./client.ts";

/** Creates the key's Secret when there is none (of two creators, the second gets 409 and keeps the first's). */
export async function ensureSessionKey(
  kube: KubeClient,
  secret: { namespace: string; name: string },
): Promise<void> {
  const path = resourcePath(CORE.secrets, secret.namespace, secret.name);
  if (await kube.getOrNull(path)) return;
  try {
    await kube.create(resourcePath(CORE.secrets, secret.namespace), {
      apiVersion: "v1",
      kind: "Secret",
      type: "Opaque",
      metadata: {
        name: secret.name,
        namespace: secret.namespace,
        labels: { "app.kubernetes.io/part-of": "livy-operator" },
      },
      data: { [SESSION_KEY_SECRET_KEY]: newSessionKey() },
    });
  } catch (err) {
    if (!(err instanceof KubeApiError && err.isConflict)) throw err;
  }
}

export class SessionKey {
  readonly #kube: KubeClient;
  readonly #path: string;
  readonly #log: Logger;
  #key: Buffer | null = null;
  #timer: NodeJS.Timeout | null = null;
  #lastRefresh = 0;
  #refreshing: Promise<boolean> | null = null;

  /** Called with each new key (the first read included). */
  onChange: ((key: Buffer) => void) | null = null;

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
        if (changed) this.onChange?.(next);
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
