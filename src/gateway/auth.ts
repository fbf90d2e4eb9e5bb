/**
 * Who the caller is (TokenReview) and whether RBAC lets them use the LivySession (SubjectAccessReview),
 * each decision cached briefly in a bounded cache. Tokens are never logged or kept: cache keys are their
 * SHA-256.
 *
 * Authorization: the verb the API server would use for the HTTP method (GET → get, POST → create,
 * DELETE → delete, ...) on the subresource `livysessions/proxy` of the LivySession (API group livy.dev),
 * as `services/proxy` works for Services. So `get` reads sessions, statements and results, `create` runs
 * code, `delete` detaches; the chart aggregates get/create/delete into `edit` and get into `view`.
 */
import { createHash } from "node:crypto";
import { GROUP, PLURAL } from "../api/index.ts";
import type { KubeClient } from "../kube/client.ts";
import { DecisionCache } from "./cache.ts";

export const AUTHZ_SUBRESOURCE = "proxy";
export const AUTHZ_RESOURCE = `${PLURAL}/${AUTHZ_SUBRESOURCE}`;

export type Credential = { token: string } | { error: string } | null;

/**
 * The bearer token of a request: `Authorization: Bearer <token>`, or Basic auth with the token as the
 * password (any user name), so that clients that only offer Basic auth (sparkmagic's Basic_Access) work
 * with configuration only. null: no credentials at all.
 */
export function credentialOf(authorization: string | undefined): Credential {
  if (!authorization) return null;
  const sp = authorization.indexOf(" ");
  const scheme = (sp < 0 ? authorization : authorization.slice(0, sp)).toLowerCase();
  const rest = sp < 0 ? "" : authorization.slice(sp + 1).trim();
  if (scheme === "bearer") return rest ? { token: rest } : { error: "empty Bearer token" };
  if (scheme === "basic") {
    const decoded = Buffer.from(rest, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return { error: "Basic credentials without a password" };
    const token = decoded.slice(colon + 1);
    return token ? { token } : { error: "Basic credentials with an empty password (the token goes there)" };
  }
  return {
    error: `unsupported authorization scheme ${scheme} (use Bearer, or Basic with the token as password)`,
  };
}

export interface UserInfo {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export type AuthnResult = { ok: true; user: UserInfo } | { ok: false; reason: string };
export type AuthzResult = { allowed: true } | { allowed: false; reason: string };

export interface AccessRequest {
  namespace: string;
  name: string;
  verb: string;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: UserInfo;
  error?: string;
}

interface SarStatus {
  allowed?: boolean;
  denied?: boolean;
  reason?: string;
  evaluationError?: string;
}

export class Auth {
  readonly #kube: KubeClient;
  readonly #authn: DecisionCache<AuthnResult>;
  readonly #authz: DecisionCache<AuthzResult>;
  readonly #opts: { authnTtlMs: number; authzTtlMs: number; negativeTtlMs: number; audiences: string[] };
  /** Reviews sent to the API server (not answered from the caches), for the metrics. */
  readonly reviews = { tokenReviews: 0, accessReviews: 0 };

  constructor(
    kube: KubeClient,
    opts: {
      authnTtlMs: number;
      authzTtlMs: number;
      negativeTtlMs: number;
      maxEntries: number;
      audiences: string[];
    },
  ) {
    this.#kube = kube;
    this.#authn = new DecisionCache(opts.maxEntries);
    this.#authz = new DecisionCache(opts.maxEntries);
    this.#opts = opts;
  }

  get caches() {
    return { authn: this.#authn, authz: this.#authz };
  }

  /** TokenReview, cached. Rejects when the API server cannot be asked (the caller answers 503, not 401). */
  authenticate(token: string): Promise<AuthnResult> {
    const key = createHash("sha256").update(token).digest("base64url");
    return this.#authn.getOrCompute(
      key,
      async () => {
        this.reviews.tokenReviews++;
        const review = await this.#kube.create<{ status?: TokenReviewStatus }>(
          "/apis/authentication.k8s.io/v1/tokenreviews",
          {
            apiVersion: "authentication.k8s.io/v1",
            kind: "TokenReview",
            spec: { token, ...(this.#opts.audiences.length ? { audiences: this.#opts.audiences } : {}) },
          },
        );
        const st = review.status ?? {};
        if (st.authenticated && st.user?.username) return { ok: true, user: st.user };
        return { ok: false, reason: st.error || "the token is not valid" };
      },
      (r) => (r.ok ? this.#opts.authnTtlMs : this.#opts.negativeTtlMs),
    );
  }

  /** SubjectAccessReview on the LivySession's `proxy` subresource, cached. */
  authorize(user: UserInfo, req: AccessRequest): Promise<AuthzResult> {
    const key = JSON.stringify([
      user.username,
      user.uid,
      user.groups,
      user.extra,
      req.namespace,
      req.name,
      req.verb,
    ]);
    return this.#authz.getOrCompute(
      createHash("sha256").update(key).digest("base64url"),
      async () => {
        this.reviews.accessReviews++;
        const review = await this.#kube.create<{ status?: SarStatus }>(
          "/apis/authorization.k8s.io/v1/subjectaccessreviews",
          {
            apiVersion: "authorization.k8s.io/v1",
            kind: "SubjectAccessReview",
            spec: {
              user: user.username,
              ...(user.uid ? { uid: user.uid } : {}),
              ...(user.groups ? { groups: user.groups } : {}),
              ...(user.extra ? { extra: user.extra } : {}),
              resourceAttributes: {
                namespace: req.namespace,
                verb: req.verb,
                group: GROUP,
                resource: PLURAL,
                subresource: AUTHZ_SUBRESOURCE,
                name: req.name,
              },
            },
          },
        );
        const st = review.status ?? {};
        if (st.allowed) return { allowed: true };
        return {
          allowed: false,
          reason: forbiddenMessage(user.username, req, st.reason || st.evaluationError),
        };
      },
      (r) => (r.allowed ? this.#opts.authzTtlMs : this.#opts.negativeTtlMs),
    );
  }
}

/** The API server's wording for a denial, plus what to grant. */
export function forbiddenMessage(username: string, req: AccessRequest, why?: string): string {
  return (
    `${PLURAL}.${GROUP} "${req.name}" is forbidden: User "${username}" cannot ${req.verb} resource ` +
    `"${AUTHZ_RESOURCE}" in API group "${GROUP}" in the namespace "${req.namespace}"` +
    `${why ? `: ${why}` : ""} (grant ${req.verb} on ${AUTHZ_RESOURCE}; the edit role has get, create and delete, view has get)`
  );
}
