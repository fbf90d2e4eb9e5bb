import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testbed } from "../testbed/context.ts";
import { livyClientsVenv } from "../testbed/livy.ts";
import {
  type GatewayProcess,
  gw,
  runThroughGateway,
  serviceAccountToken,
  startGateway,
  textOf,
} from "./gateway-harness.ts";
import {
  applySession,
  createNamespace,
  getSession,
  installCrd,
  isReady,
  kubectl,
  type OperatorProcess,
  phaseIs,
  startOperator,
  waitFor,
} from "./harness.ts";

const run = promisify(execFile);
const tb = testbed();
const SKIP_LIVY = process.env.LIVY_TESTBED_SKIP_LIVY === "1";

/**
 * The gateway in front of real Apache Livy on Spark (the operator's server URL points at the test bed's
 * Livy: kwok pods carry no traffic): a statement through it, the PyPI `livy` client unchanged through it
 * with the token as its Basic auth password, and a statement sent to the session after its idle teardown,
 * held through a real cold start and answered with its result. The LivySession recovers from a Spark driver
 * that does not start in time (Livy's RSC connect timeout, hit on a loaded machine): this suite is about
 * the gateway, and Recover is what a user sets for that. sparkmagic (from PyPI, unchanged) runs a notebook's
 * `%%spark` cell through it too, executed by jupyter nbconvert.
 */
describe("gateway on real Livy", () => {
  if (!tb.livyUrl || !tb.python) {
    if (SKIP_LIVY)
      it.skip("SKIPPED because LIVY_TESTBED_SKIP_LIVY=1 (no real Livy in the test bed)", () => {});
    else
      it("real Livy is part of the test bed", () => {
        throw new Error("the test bed provided no real Livy although LIVY_TESTBED_SKIP_LIVY is not 1");
      });
    return;
  }
  const livyUrl = tb.livyUrl;
  const python = tb.python;
  let op: OperatorProcess;
  let gate: GatewayProcess;
  let ns: string;
  let token: string;

  beforeAll(async () => {
    await installCrd();
    ns = await createNamespace("gwlivy");
    op = await startOperator({
      name: "gateway-livy",
      args: ["--namespaces", ns, "--server-url-template", livyUrl],
    });
    gate = await startGateway({ name: "livy" });
    token = await serviceAccountToken(ns, "analyst", ["get", "create", "delete"]);
    await applySession(ns, "nb", {
      kind: "pyspark",
      idleTimeout: "1h",
      startupTimeout: "15m",
      failurePolicy: "Recover",
      maxRestarts: 3,
    });
    await waitFor(ns, "nb", isReady, "Ready on real Livy", 900_000);
  });

  afterAll(async () => {
    await kubectl(["delete", "livysessions", "--all", "-n", ns, "--wait=true", "--timeout=120s"]).catch(
      () => "",
    );
    expect(await gate?.stop()).toBe(0);
    await op?.stop();
    await kubectl(["delete", "namespace", ns, "--wait=false"]).catch(() => "");
  });

  it("runs spark.range(1000).count() through the gateway", async () => {
    const { statement } = await runThroughGateway(gate.url, ns, "nb", token, "spark.range(1000).count()", {
      timeoutMs: 300_000,
    });
    expect(textOf(statement)).toBe("1000");
    const s = await gw(gate.url, ns, "nb", "GET", "/sessions/0", { token });
    expect(s.json).toMatchObject({ id: 0, name: "nb", kind: "pyspark", state: "idle" });
    expect(s.text).not.toContain(livyUrl);
  }, 600_000);

  it("serves the PyPI livy client, unchanged, with the token as its Basic auth password", async () => {
    const script = [
      "import sys",
      "from livy import LivySession",
      "url, token = sys.argv[1], sys.argv[2]",
      "with LivySession.create(url, auth=('analyst', token), echo=False) as s:",
      "    out = s.run('spark.range(1000).count()')",
      "    print('RESULT', out.text)",
      "    print('SESSION', s.session_id)",
    ].join("\n");
    const { stdout } = await run(
      python,
      ["-c", script, `${gate.url}/namespaces/${ns}/livysessions/nb`, token],
      {
        timeout: 300_000,
      },
    );
    expect(stdout).toContain("RESULT 1000");
    expect(stdout).toContain("SESSION 0");
    // leaving the `with` block deleted session 0: a detach, the LivySession is still Ready
    expect(isReady((await getSession(ns, "nb")) as never)).toBe(true);
  }, 600_000);

  it("serves sparkmagic, unchanged: a notebook's %%spark cell through the gateway with Basic_Access", async () => {
    const venv = livyClientsVenv();
    const home = mkdtempSync(join(tmpdir(), "sparkmagic-"));
    try {
      // sparkmagic's defaults wait 60 s for a session to start; a cold start here can take longer
      mkdirSync(join(home, ".sparkmagic"));
      writeFileSync(
        join(home, ".sparkmagic", "config.json"),
        JSON.stringify({ livy_session_startup_timeout_seconds: 900, wait_for_idle_timeout_seconds: 900 }),
      );
      const url = `${gate.url}/namespaces/${ns}/livysessions/nb`;
      const cell = (source: string) => ({
        cell_type: "code",
        execution_count: null,
        metadata: {},
        outputs: [],
        source,
      });
      const notebook = {
        nbformat: 4,
        nbformat_minor: 5,
        metadata: { kernelspec: { name: "python3", display_name: "Python 3", language: "python" } },
        cells: [
          cell("%load_ext sparkmagic.magics"),
          cell(`%spark add -s s1 -l python -u ${url} -t Basic_Access -a analyst -p ${token}`),
          cell("%%spark -s s1\nspark.range(1000).count()"),
          cell("%spark cleanup"),
        ],
      };
      writeFileSync(join(home, "gateway.ipynb"), JSON.stringify(notebook), { mode: 0o600 });
      const t0 = Date.now();
      await run(
        join(venv, "bin", "jupyter"),
        [
          "nbconvert",
          "--to",
          "notebook",
          "--execute",
          "--ExecutePreprocessor.timeout=900",
          "--output",
          "out.ipynb",
          "gateway.ipynb",
        ],
        {
          cwd: home,
          env: { ...process.env, HOME: home, PATH: `${join(venv, "bin")}:${process.env.PATH}` },
          timeout: 900_000,
        },
      );
      const out = JSON.parse(readFileSync(join(home, "out.ipynb"), "utf8")) as {
        cells: Array<{
          outputs: Array<{ text?: string | string[]; data?: Record<string, string | string[]> }>;
        }>;
      };
      const text = (i: number) =>
        (out.cells[i]?.outputs ?? [])
          .map((o) => [o.text, ...Object.values(o.data ?? {})].flat().join(""))
          .join("\n");
      // sparkmagic shows a progress widget, then the statement's output
      expect(
        text(2)
          .split("\n")
          .map((l) => l.trim()),
      ).toContain("1000");
      process.stderr.write(`[gateway-livy] sparkmagic notebook executed in ${Date.now() - t0} ms\n`);
      // %spark cleanup deleted session 0: a detach
      expect(isReady((await getSession(ns, "nb")) as never)).toBe(true);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  }, 900_000);

  it("answers a statement sent after the idle teardown with its result, through a real cold start", async () => {
    await applySession(ns, "nb", {
      kind: "pyspark",
      idleTimeout: "5s",
      startupTimeout: "15m",
      failurePolicy: "Recover",
      maxRestarts: 3,
    });
    await waitFor(ns, "nb", phaseIs("Idle"), "Idle", 120_000);
    const t0 = Date.now();
    const { post, statement } = await runThroughGateway(gate.url, ns, "nb", token, "sum(range(10))", {
      timeoutMs: 900_000,
      headers: { prefer: "wait=900" },
    });
    expect(post.status).toBe(201);
    expect(textOf(statement)).toBe("45");
    const held = Number(post.headers.get("x-livy-gateway-held-ms"));
    expect(held).toBeGreaterThan(1_000);
    process.stderr.write(
      `[gateway-livy] statement held ${held} ms through a cold start, answered after ${Date.now() - t0} ms\n`,
    );
  }, 900_000);
});
