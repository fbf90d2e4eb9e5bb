import type { AuthSpec } from "../api/index.ts";
import type { LivyAuth } from "./client.ts";

/** The part of a core/v1 Secret that matters here: base64 values by key. */
export interface SecretLike {
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/**
 * Credentials for Livy from a LivySession's `spec.auth` and its Secret (keys `username` and `password` for
 * Basic, `token` for Bearer). One place for that mapping, used by the operator and by clients resolving a
 * LivySession. Errors name the Secret and the missing keys, never a value.
 */
export function authFromSecret(auth: AuthSpec, secret: SecretLike | null): LivyAuth {
  if (!secret) throw new Error(`Secret ${auth.secretName} not found`);
  const value = (key: string): string | undefined => {
    const raw = secret.data?.[key];
    if (raw !== undefined) return Buffer.from(raw, "base64").toString("utf8");
    return secret.stringData?.[key];
  };
  if (auth.type === "Basic") {
    const username = value("username");
    const password = value("password");
    const missing = [
      username === undefined ? "username" : "",
      password === undefined ? "password" : "",
    ].filter(Boolean);
    if (missing.length)
      throw new Error(`Secret ${auth.secretName} lacks ${missing.join(" and ")} (needed by auth type Basic)`);
    return { type: "basic", username: username ?? "", password: password ?? "" };
  }
  const token = value("token");
  if (!token) throw new Error(`Secret ${auth.secretName} lacks token (needed by auth type Bearer)`);
  return { type: "bearer", token: token.trim() };
}
