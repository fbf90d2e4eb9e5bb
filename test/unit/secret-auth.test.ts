import { describe, expect, it } from "vitest";
import { authFromSecret } from "../../src/livy/secret-auth.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

describe("authFromSecret", () => {
  it("reads Basic credentials from data (base64) or stringData", () => {
    expect(
      authFromSecret(
        { type: "Basic", secretName: "s" },
        { data: { username: b64("ann"), password: b64("pw") } },
      ),
    ).toEqual({
      type: "basic",
      username: "ann",
      password: "pw",
    });
    expect(
      authFromSecret({ type: "Basic", secretName: "s" }, { stringData: { username: "bob", password: "x" } }),
    ).toMatchObject({
      username: "bob",
    });
  });
  it("reads a Bearer token, trimming a trailing newline", () => {
    expect(authFromSecret({ type: "Bearer", secretName: "t" }, { data: { token: b64("abc\n") } })).toEqual({
      type: "bearer",
      token: "abc",
    });
  });
  it.each([
    [{ type: "Basic" as const, secretName: "s" }, null, "Secret s not found"],
    [
      { type: "Basic" as const, secretName: "s" },
      { data: { username: b64("ann") } },
      "Secret s lacks password (needed by auth type Basic)",
    ],
    [
      { type: "Basic" as const, secretName: "s" },
      { data: {} },
      "Secret s lacks username and password (needed by auth type Basic)",
    ],
    [
      { type: "Bearer" as const, secretName: "t" },
      { data: { username: b64("ann") } },
      "Secret t lacks token (needed by auth type Bearer)",
    ],
  ])("names the Secret and the missing keys, never a value (%#)", (auth, secret, message) => {
    expect(() => authFromSecret(auth, secret)).toThrow(message);
    try {
      authFromSecret(auth, secret);
    } catch (err) {
      expect(String(err)).not.toContain("ann");
    }
  });
});
