import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { credentialLivyConf, newSessionKey, sessionCredential } from "../../src/api/credential.ts";
import { ensureLivyInstall, livyServerCommand, waitForLivy } from "../testbed/livy.ts";
import { ensureLivyAuthJar } from "../testbed/livy-auth.ts";
import { freePort } from "../testbed/process.ts";
import { until } from "./harness.ts";

const SKIP_LIVY = process.env.LIVY_TESTBED_SKIP_LIVY === "1";

/**
 * The per-session credential enforced inside real Livy by its own auth hook (livy.server.auth.type
 * custom, the filter of deploy/livy-image/auth): a Livy server of its own, configured as the operator
 * configures a LivySession's server, refuses every request without the credential, and admits the
 * credential as a Bearer token or as the Basic auth password. No Spark session is needed for that.
 */
describe.skipIf(SKIP_LIVY)("the Livy auth filter on real Livy", () => {
  let proc: ChildProcess;
  let url: string;
  let dir: string;
  let tokenFile: string;
  const key = Buffer.from(newSessionKey(), "base64");
  const credential = sessionCredential(key, "0b6e1c3e-uid-of-the-livysession");

  beforeAll(async () => {
    const install = await ensureLivyInstall();
    const jar = await ensureLivyAuthJar(install);
    dir = mkdtempSync(join(tmpdir(), "livy-auth-"));
    tokenFile = join(dir, "token");
    writeFileSync(tokenFile, `${credential}\n`, { mode: 0o600 });
    const port = await freePort();
    const conf = {
      ...credentialLivyConf(),
      "livy.server.auth.session.param.token-file": tokenFile,
    };
    const cmd = livyServerCommand(install, { port, workDir: dir, conf });
    // the image has the jar in $LIVY_HOME/jars; here it joins the class path beside them
    const cp = cmd.args.indexOf("-cp");
    cmd.args[cp + 1] = `${cmd.args[cp + 1]}:${jar}`;
    const log = openSync(join(dir, "livy.out"), "a");
    proc = spawn(cmd.command, cmd.args, {
      cwd: cmd.cwd,
      env: { ...process.env, ...cmd.env },
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    url = `http://127.0.0.1:${port}`;
    await waitForLivy(url, 120_000).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${readFileSync(join(dir, "livy.out"), "utf8").slice(-3000)}`);
    });
  });

  afterAll(async () => {
    if (proc && proc.exitCode === null) {
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const call = (method: string, path: string, authorization?: string, body?: unknown) =>
    fetch(`${url}${path}`, {
      method,
      headers: {
        "content-type": "application/json",
        "x-requested-by": "test",
        ...(authorization ? { authorization } : {}),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const basic = (password: string) => `Basic ${Buffer.from(`gateway:${password}`).toString("base64")}`;

  it("refuses every request without the credential, reads included, with 401", async () => {
    for (const [method, path, body] of [
      ["GET", "/sessions"],
      ["POST", "/sessions", { kind: "pyspark" }],
      ["GET", "/sessions/0/statements"],
      ["POST", "/sessions/0/statements", { code: "1" }],
      ["DELETE", "/sessions/0"],
      ["GET", "/batches"],
    ] as Array<[string, string, unknown?]>) {
      const res = await call(method, path, undefined, body);
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
      expect(await res.json()).toEqual({
        msg: "Unauthorized: this Livy server answers only its LivySession's gateway and operator",
      });
    }
    // nothing was created
    const list = (await (await call("GET", "/sessions", `Bearer ${credential}`)).json()) as { total: number };
    expect(list.total).toBe(0);
  });

  it("refuses another session's credential, a wrong one and malformed headers", async () => {
    const other = sessionCredential(key, "another-uid");
    for (const h of [
      `Bearer ${other}`,
      `Bearer ${credential}x`,
      `Bearer ${credential.slice(0, -1)}`,
      basic(other),
      `Basic ${Buffer.from(credential).toString("base64")}`, // no colon: no password
      "Basic !!!",
      `Negotiate ${credential}`,
      credential,
    ]) {
      expect((await call("GET", "/sessions", h)).status, h.slice(0, 20)).toBe(401);
    }
  });

  it("admits the credential as a Bearer token and as the Basic auth password", async () => {
    expect((await call("GET", "/sessions", `Bearer ${credential}`)).status).toBe(200);
    expect((await call("GET", "/sessions", `bearer ${credential}`)).status).toBe(200);
    expect((await call("GET", "/sessions", basic(credential))).status).toBe(200);
    // Livy's own answer behind it
    const missing = await call("GET", "/sessions/999", `Bearer ${credential}`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ msg: "Session '999' not found." });
  });

  it("leaves GET /version open (the kubelet's probe), and only GET", async () => {
    const v = await call("GET", "/version");
    expect(v.status).toBe(200);
    expect(((await v.json()) as { version: string }).version).toBe("0.9.0-incubating");
    expect((await call("POST", "/version", undefined, {})).status).toBe(401);
  });

  it("takes a rotated credential from its file without a restart", async () => {
    const next = sessionCredential(Buffer.from(newSessionKey(), "base64"), "0b6e1c3e-uid-of-the-livysession");
    writeFileSync(tokenFile, next);
    // the filter looks at the file at most every 10 s
    await until(
      "the new credential admitted",
      async () => (await call("GET", "/sessions", `Bearer ${next}`)).status === 200,
      20_000,
    );
    expect((await call("GET", "/sessions", `Bearer ${credential}`)).status).toBe(401);
  });
});
