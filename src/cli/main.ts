#!/usr/bin/env node
import { Buffer } from "node:buffer";
/**
 * livyctl: run Spark code in a Livy session and inspect sessions, against a Livy URL or a LivySession
 * resource (which it wakes when idle). Exit codes are in render.ts.
 */
import { readFile, writeFile } from "node:fs/promises";
import { Command, CommanderError, Option } from "commander";
import { parseDuration } from "../api/duration.ts";
import {
  type InteractiveSession,
  LivyClient,
  type StatementHandle,
  type StatementKind,
} from "../livy/index.ts";
import {
  EXIT,
  exitCodeOf,
  type OutputFormat,
  renderError,
  renderJson,
  renderResult,
  renderSessions,
  renderStatements,
} from "./render.ts";

interface GlobalOptions {
  url?: string;
  livysession?: string;
  kubeconfig?: string;
  token?: string;
  output: OutputFormat;
  requestTimeout: string;
}

class UsageError extends Error {}

function durationMs(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseDuration(value);
  } catch {
    throw new UsageError(`${flag}: not a duration: ${value} (examples: 500ms, 30s, 5m, 1h)`);
  }
}

function positiveInt(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag}: not a non-negative integer: ${value}`);
  return n;
}

/** Loaded only when a LivySession is named: the Kubernetes client costs startup time plain Livy use should not pay. */
async function kubernetes(kubeconfig: string | undefined) {
  const [{ KubeClient, loadKubeConfig }, kubeEntry] = await Promise.all([
    import("../kube/client.ts"),
    import("../livy/kube.ts"),
  ]);
  return { kube: await KubeClient.create(loadKubeConfig(kubeconfig)), ...kubeEntry };
}

/** The Livy endpoint: a URL (and a session id given by the user), or a LivySession's status. */
async function connect(
  g: GlobalOptions,
  sessionArg: string | undefined,
  signal: AbortSignal,
  wait: number | undefined,
): Promise<{ client: LivyClient; sessionId: number | undefined }> {
  const token = g.token ?? process.env.LIVY_TOKEN;
  const clientOptions = {
    timeoutMs: durationMs("--request-timeout", g.requestTimeout) ?? 30_000,
    ...(token ? { auth: { type: "bearer" as const, token } } : {}),
  };
  const sessionId = sessionArg === undefined ? undefined : positiveInt("session", sessionArg);
  if (g.livysession) {
    const [namespace, name] = g.livysession.includes("/")
      ? g.livysession.split("/", 2)
      : ["default", g.livysession];
    if (!namespace || !name)
      throw new UsageError(`--livysession: expected NAMESPACE/NAME, got ${g.livysession}`);
    const { kube, resolveLivySession, livySessionAuth } = await kubernetes(g.kubeconfig);
    try {
      const endpoint = await resolveLivySession(kube, namespace, name, {
        signal,
        timeoutMs: wait ?? 5 * 60_000,
      });
      const auth = token ? undefined : await livySessionAuth(kube, namespace, name);
      return {
        client: new LivyClient({ ...clientOptions, ...(auth ? { auth } : {}), baseUrl: endpoint.serverURL }),
        sessionId: sessionId ?? endpoint.sessionId,
      };
    } finally {
      await kube.close();
    }
  }
  const url = g.url ?? process.env.LIVY_URL;
  if (!url)
    throw new UsageError("no Livy to talk to: pass --url (or set LIVY_URL) or --livysession NAMESPACE/NAME");
  return { client: new LivyClient({ ...clientOptions, baseUrl: url }), sessionId };
}

function requireSession(id: number | undefined): number {
  if (id === undefined) throw new UsageError("which session? pass --session ID (or use --livysession)");
  return id;
}

async function readCode(code: string | undefined, file: string | undefined): Promise<string> {
  if (code !== undefined && file !== undefined)
    throw new UsageError("give the code as an argument or --file, not both");
  if (file !== undefined) return readFile(file, "utf8");
  if (code !== undefined && code !== "-") return code;
  if (process.stdin.isTTY && code === undefined) {
    throw new UsageError("no code: pass it as an argument, with --file, or on stdin");
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** A one-line progress indicator on stderr while a statement runs; only on a terminal. */
function showProgress(handle: StatementHandle): () => void {
  if (!process.stderr.isTTY) return () => {};
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  const started = Date.now();
  let i = 0;
  const draw = () => {
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    const pct = handle.progress > 0 ? ` ${Math.round(handle.progress * 100)}%` : "";
    process.stderr.write(
      `\r${frames[i++ % frames.length]} statement ${handle.id} ${handle.state}${pct} ${secs}s\x1b[K`,
    );
  };
  const timer = setInterval(draw, 100);
  draw();
  return () => {
    clearInterval(timer);
    process.stderr.write("\r\x1b[K");
  };
}

function program(): Command {
  const cli = new Command("livyctl")
    .description("Run Spark code in Apache Livy sessions and inspect them.")
    .option("--url <url>", "Livy server URL (default: $LIVY_URL)")
    .option("--livysession <namespace/name>", "reach Livy through this LivySession (woken when idle)")
    .option("--kubeconfig <path>", "kubeconfig for --livysession (default: $KUBECONFIG, ~/.kube/config)")
    .option("--token <token>", "bearer token for Livy (default: $LIVY_TOKEN)")
    .addOption(new Option("-o, --output <format>", "output format").choices(["text", "json"]).default("text"))
    .option("--request-timeout <duration>", "timeout of each HTTP request", "30s")
    .showHelpAfterError()
    .exitOverride();
  const g = () => cli.opts<GlobalOptions>();

  cli
    .command("run")
    .description(
      "run code in a session and print its result; the code comes from the argument, --file, or stdin ('-')",
    )
    .argument("[code]", "the code; '-' or absent: read stdin")
    .option("-s, --session <id>", "Livy session id (with --livysession: its current session)")
    .option("-f, --file <path>", "read the code from this file")
    .addOption(new Option("--kind <kind>", "statement kind").choices(["spark", "pyspark", "sparkr", "sql"]))
    .option("--timeout <duration>", "cancel the statement when it has not finished by then")
    .option("--wait <duration>", "wait this long for a starting session instead of failing at once")
    .option("--save <file>", "write an image result's bytes to this file")
    .action(async (code: string | undefined, o: Record<string, string | undefined>) => {
      const abort = new AbortController();
      const onSigint = () => abort.abort(new Error("interrupted"));
      process.once("SIGINT", onSigint);
      const wait = durationMs("--wait", o.wait);
      const source = await readCode(code, o.file);
      const { client, sessionId } = await connect(g(), o.session, abort.signal, wait);
      try {
        const session: InteractiveSession = client.session(requireSession(sessionId), {
          mode: wait === undefined ? "failFast" : "resilient",
          ...(wait === undefined ? {} : { waitTimeoutMs: wait }),
        });
        const timeoutMs = durationMs("--timeout", o.timeout);
        const handle = await session.submit(source, {
          signal: abort.signal,
          ...(o.kind ? { kind: o.kind as StatementKind } : {}),
          ...(timeoutMs === undefined ? {} : { timeoutMs }),
        });
        const stop = g().output === "text" ? showProgress(handle) : () => {};
        try {
          const result = await handle.result;
          stop();
          if (o.save && result.kind === "image")
            await writeFile(o.save, Buffer.from(result.base64, "base64"));
          process.stdout.write(renderResult(result, g().output));
        } finally {
          stop();
        }
      } finally {
        process.off("SIGINT", onSigint);
        await client.close();
      }
    });

  cli
    .command("get")
    .description("show a session, or one of its statements")
    .argument("[session]", "session id (default with --livysession: its current session)")
    .argument("[statement]", "statement id")
    .action(async (sessionArg: string | undefined, statementArg: string | undefined) => {
      const { client, sessionId } = await connect(g(), sessionArg, AbortSignal.timeout(600_000), undefined);
      try {
        const id = requireSession(sessionId);
        const value =
          statementArg === undefined
            ? await client.getSession(id)
            : await client.getStatement(id, positiveInt("statement", statementArg));
        process.stdout.write(renderJson(value, g().output, (v) => JSON.stringify(v, null, 2)));
      } finally {
        await client.close();
      }
    });

  cli
    .command("list")
    .description("list the sessions of the Livy server")
    .action(async () => {
      const { client } = await connect(g(), undefined, AbortSignal.timeout(600_000), undefined);
      try {
        process.stdout.write(
          renderSessions((await client.listSessions({ size: 1000 })).sessions, g().output),
        );
      } finally {
        await client.close();
      }
    });

  cli
    .command("statements")
    .description("list a session's statements, newest first")
    .argument("[session]", "session id")
    .option("-n, --size <n>", "how many", "20")
    .action(async (sessionArg: string | undefined, o: { size: string }) => {
      const { client, sessionId } = await connect(g(), sessionArg, AbortSignal.timeout(600_000), undefined);
      try {
        const list = await client.listStatements(requireSession(sessionId), {
          order: "desc",
          size: positiveInt("--size", o.size),
        });
        process.stdout.write(renderStatements(list.statements, g().output));
      } finally {
        await client.close();
      }
    });

  cli
    .command("logs")
    .description("print a session's log (the driver's output)")
    .argument("[session]", "session id")
    .option("--from <line>", "first line (default: the last --size lines)")
    .option("-n, --size <n>", "how many lines", "100")
    .action(async (sessionArg: string | undefined, o: { from?: string; size: string }) => {
      const { client, sessionId } = await connect(g(), sessionArg, AbortSignal.timeout(600_000), undefined);
      try {
        const log = await client.sessionLog(requireSession(sessionId), {
          size: positiveInt("--size", o.size),
          ...(o.from === undefined ? {} : { from: positiveInt("--from", o.from) }),
        });
        process.stdout.write(renderJson(log, g().output, (v) => (v as { log: string[] }).log.join("\n")));
      } finally {
        await client.close();
      }
    });

  cli
    .command("cancel")
    .description("cancel a statement")
    .argument("<session>", "session id")
    .argument("<statement>", "statement id")
    .action(async (sessionArg: string, statementArg: string) => {
      const { client, sessionId } = await connect(g(), sessionArg, AbortSignal.timeout(600_000), undefined);
      try {
        const res = await client.cancelStatement(
          requireSession(sessionId),
          positiveInt("statement", statementArg),
        );
        process.stdout.write(renderJson(res, g().output, (v) => (v as { msg: string }).msg));
      } finally {
        await client.close();
      }
    });

  cli
    .command("version")
    .description("show the Livy server's version")
    .action(async () => {
      const { client } = await connect(g(), undefined, AbortSignal.timeout(600_000), undefined);
      try {
        const v = await client.version();
        process.stdout.write(renderJson(v, g().output, (x) => (x as { version: string }).version));
      } finally {
        await client.close();
      }
    });

  cli
    .command("wake")
    .description("demand a LivySession (starts it again after an idle teardown) and wait until it is Ready")
    .argument("<namespace/name>", "the LivySession")
    .option("--timeout <duration>", "how long to wait for Ready", "5m")
    .action(async (ref: string, o: { timeout: string }) => {
      const [namespace, name] = ref.includes("/") ? ref.split("/", 2) : ["default", ref];
      if (!namespace || !name) throw new UsageError(`expected NAMESPACE/NAME, got ${ref}`);
      const { kube, resolveLivySession, wakeLivySession } = await kubernetes(g().kubeconfig);
      try {
        await wakeLivySession(kube, namespace, name);
        const endpoint = await resolveLivySession(kube, namespace, name, {
          wake: false,
          timeoutMs: durationMs("--timeout", o.timeout),
        });
        process.stdout.write(
          renderJson(endpoint, g().output, (e) => {
            const ep = e as { serverURL: string; sessionId: number };
            return `${ep.serverURL}/sessions/${ep.sessionId}`;
          }),
        );
      } finally {
        await kube.close();
      }
    });

  return cli;
}

async function main(argv: string[]): Promise<number> {
  const cli = program();
  try {
    await cli.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const format = cli.opts<GlobalOptions>().output ?? "text";
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n`);
      return EXIT.usage;
    }
    process.stderr.write(renderError(err, format === "json" ? "json" : "text"));
    return exitCodeOf(err);
  }
}

process.exitCode = await main(process.argv);
