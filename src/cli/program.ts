/**
 * livyctl (also `kubectl livy`): LivySession resources the way kubectl handles resources, and statements run
 * in their Livy sessions. Exit codes and output are in render.ts; Kubernetes in k8s.ts (loaded on demand).
 */
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { Command, CommanderError, Option } from "commander";
import { parseDuration } from "../api/duration.ts";
import {
  type InteractiveSession,
  LivyClient,
  type StatementHandle,
  type StatementKind,
} from "../livy/index.ts";
import { sleep } from "../livy/wait.ts";
import { complete, completionScript, SHELLS } from "./completion.ts";
import type { Kube } from "./k8s.ts";
import {
  describeLivySession,
  EXIT,
  exitCodeOf,
  OUTPUT_FORMATS,
  type OutputFormat,
  renderError,
  renderJson,
  renderLivySessions,
  renderResult,
  renderSessions,
  renderStatements,
  UsageError,
} from "./render.ts";

export const VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;

interface GlobalOptions {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  url?: string;
  token?: string;
  route: "auto" | "apiserver" | "service-proxy" | "direct";
  output: OutputFormat;
  requestTimeout: string;
}

const k8s = () => import("./k8s.ts");

function durationMs(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseDuration(value);
  } catch {
    throw new UsageError(`${flag}: not a duration: ${value} (examples: 500ms, 30s, 5m, 1h; 0 for none)`);
  }
}

function nonNegativeInt(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag}: not a non-negative integer: ${value}`);
  return n;
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

/** Ctrl-C aborts what is under way (the statement is then cancelled in Livy). */
function interruptible(): { signal: AbortSignal; done: () => void } {
  const abort = new AbortController();
  const onSigint = () => abort.abort(new Error("interrupted"));
  process.once("SIGINT", onSigint);
  return { signal: abort.signal, done: () => process.off("SIGINT", onSigint) };
}

export function program(name = "livyctl"): Command {
  const cli = new Command(name)
    .description(
      "LivySessions on Kubernetes, and Spark code run in their Livy sessions.\n" +
        "Kubernetes flags work as kubectl's: the namespace comes from -n, else the kubeconfig context's.",
    )
    .version(VERSION, "--version", "print the version")
    .option("--kubeconfig <path>", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    .option("--context <name>", "kubeconfig context to use (default: the current one)")
    .option("-n, --namespace <namespace>", "namespace (default: the context's, else default)")
    .option("--url <url>", "a Livy server, instead of a LivySession (default: $LIVY_URL)")
    .option(
      "--token <token>",
      "bearer token for Livy (default: $LIVY_TOKEN, else the LivySession's spec.auth)",
    )
    .addOption(
      new Option(
        "--route <route>",
        "how --livysession reaches Livy: apiserver (through the API server to the gateway, from anywhere " +
          "the kubeconfig works), service-proxy (the API server's service proxy to the server), direct " +
          "(the server's in-cluster URL), auto (apiserver when the cluster serves the gateway's APIService " +
          "gateway.livy.dev and no --token is given; else direct in a pod, service-proxy elsewhere)",
      )
        .choices(["auto", "apiserver", "service-proxy", "direct"])
        .default("auto"),
    )
    .addOption(
      new Option("-o, --output <format>", "output format").choices([...OUTPUT_FORMATS]).default("text"),
    )
    .option("--request-timeout <duration>", "timeout of each HTTP request to Livy", "30s")
    .showHelpAfterError()
    .exitOverride();
  const g = () => cli.opts<GlobalOptions>();
  const out = (s: string): void => {
    process.stdout.write(s);
  };
  const say = (s: string): void => {
    process.stderr.write(`${s}\n`);
  };
  const livyClientOptions = () => ({
    timeoutMs: durationMs("--request-timeout", g().requestTimeout) ?? 30_000,
  });
  const token = () => g().token ?? process.env.LIVY_TOKEN;

  async function withKube<T>(fn: (k: Kube, m: Awaited<ReturnType<typeof k8s>>) => Promise<T>): Promise<T> {
    const m = await k8s();
    const k = await m.kubernetes(g());
    try {
      return await fn(k, m);
    } finally {
      await k.close();
    }
  }

  /** A Livy client and session id: from --url/$LIVY_URL and -s, or from a LivySession. */
  async function livyTarget(
    o: { livysession?: string; session?: string },
    signal: AbortSignal,
    waitMs: number,
  ): Promise<{ client: LivyClient; sessionId: number | undefined }> {
    const sessionId = o.session === undefined ? undefined : nonNegativeInt("--session", o.session);
    const url = g().url ?? (o.livysession ? undefined : process.env.LIVY_URL);
    if (o.livysession && g().url) throw new UsageError("give --livysession or --url, not both");
    if (!o.livysession) {
      if (!url)
        throw new UsageError(
          "no Livy to talk to: name a LivySession (--livysession NAME) or a Livy server (--url, $LIVY_URL)",
        );
      const t = token();
      return {
        client: new LivyClient({
          ...livyClientOptions(),
          ...(t ? { auth: { type: "bearer" as const, token: t } } : {}),
          baseUrl: url,
        }),
        sessionId,
      };
    }
    const ref = o.livysession;
    const ep = await withKube((k, m) =>
      m.endpointOf(k, ref, {
        waitMs,
        signal,
        token: token(),
        route: g().route,
        clientOptions: livyClientOptions(),
        say,
      }),
    );
    return { client: ep.client, sessionId: sessionId ?? ep.sessionId };
  }

  function requireSession(id: number | undefined): number {
    if (id === undefined)
      throw new UsageError("which Livy session? pass --session ID (or --livysession NAME)");
    return id;
  }

  const livysessionOption = () =>
    new Option(
      "-l, --livysession <name>",
      "the LivySession (NAME or NAMESPACE/NAME) whose Livy session to use",
    );

  // ------------------------------------------------------------------------------ LivySessions

  cli.commandsGroup("LivySessions (Kubernetes):");

  const get = async (names: string[], o: { allNamespaces?: boolean; selector?: string }) =>
    withKube(async (k, m) => {
      const items =
        names.length > 0
          ? await m.getLivySessions(k, names)
          : await m.listLivySessions(k, {
              ...(o.allNamespaces ? { allNamespaces: true } : {}),
              ...(o.selector ? { selector: o.selector } : {}),
            });
      if (items.length === 0 && g().output === "text") {
        say(
          o.allNamespaces ? "No LivySessions found." : `No LivySessions found in ${k.namespace} namespace.`,
        );
        return;
      }
      out(renderLivySessions(items, g().output, { allNamespaces: Boolean(o.allNamespaces) }));
    });

  cli
    .command("get")
    .description("list LivySessions, or show the ones named (as kubectl get lvs)")
    .argument("[names...]", "NAME or NAMESPACE/NAME")
    .option("-A, --all-namespaces", "in every namespace")
    .option("-l, --selector <labels>", "label selector, e.g. team=data")
    .action(get);

  cli
    .command("list")
    .alias("ls")
    .description("list LivySessions (get without names)")
    .option("-A, --all-namespaces", "in every namespace")
    .option("-l, --selector <labels>", "label selector, e.g. team=data")
    .action((o: { allNamespaces?: boolean; selector?: string }) => get([], o));

  cli
    .command("describe")
    .description("a LivySession's spec, status, conditions and recent events")
    .argument("<name>", "NAME or NAMESPACE/NAME")
    .action((ref: string) =>
      withKube(async (k, m) => {
        const [obj] = await m.getLivySessions(k, [ref]);
        if (!obj) return;
        if (g().output !== "text" && g().output !== "wide") {
          out(renderLivySessions([obj], g().output));
          return;
        }
        const { namespace, name } = m.target(k, ref);
        out(describeLivySession(obj, await m.eventsOf(k, namespace, name)));
      }),
    );

  cli
    .command("create")
    .description("create a LivySession from flags or a file (-f); the operator starts it at once")
    .argument("[name]", "NAME or NAMESPACE/NAME (with -f: overrides metadata.name)")
    .option("-f, --filename <file>", "a LivySession manifest (YAML or JSON; '-' for stdin)")
    .addOption(
      new Option("--kind <kind>", "session kind (default pyspark)").choices([
        "spark",
        "pyspark",
        "sparkr",
        "sql",
      ]),
    )
    .option(
      "--idle-timeout <duration>",
      "tear the server down after this long without statements (default 15m)",
    )
    .option("--startup-timeout <duration>", "fail or restart when not Ready this long (default 5m)")
    .addOption(new Option("--failure-policy <policy>").choices(["FailFast", "Recover"]))
    .option("--max-restarts <n>", "with --failure-policy Recover")
    .option("--suspend", "create it suspended (nothing deployed until resumed)")
    .option("--image <image>", "the Livy server image")
    .option("--driver-memory <size>", "e.g. 2g")
    .option("--executor-memory <size>", "e.g. 4g")
    .option("--conf <key=value...>", "Spark conf (repeatable)")
    .option("--wait [duration]", "wait until it is Ready (default 5m when given without a value)")
    .action(async (ref: string | undefined, o: Record<string, string | boolean | string[] | undefined>) => {
      const waitMs =
        o.wait === undefined ? undefined : o.wait === true ? 300_000 : durationMs("--wait", String(o.wait));
      await withKube(async (k, m) => {
        const obj = await m.objectToCreate(k, ref, o as never);
        const created = await m.createLivySession(k, obj);
        if (g().output === "text" || g().output === "wide")
          out(`livysession.livy.dev/${created.metadata.name} created\n`);
        else out(renderLivySessions([created], g().output));
        if (waitMs !== undefined && waitMs > 0) {
          const ns = created.metadata.namespace ?? k.namespace;
          const { resolveLivySession } = await import("../livy/kube.ts");
          await resolveLivySession(k.kube, ns, created.metadata.name, { timeoutMs: waitMs, wake: false });
          if (g().output === "text" || g().output === "wide")
            out(`livysession.livy.dev/${created.metadata.name} Ready\n`);
        }
      });
    });

  cli
    .command("delete")
    .description("delete LivySessions (the operator deletes their Livy sessions and servers)")
    .argument("<names...>", "NAME or NAMESPACE/NAME")
    .option("--no-wait", "return once the deletion is accepted")
    .option("--timeout <duration>", "how long to wait until they are gone", "2m")
    .action((refs: string[], o: { wait: boolean; timeout: string }) =>
      withKube(async (k, m) => {
        const timeoutMs = durationMs("--timeout", o.timeout) ?? 120_000;
        for (const ref of refs) {
          await m.deleteLivySession(k, ref, { wait: o.wait, timeoutMs });
          out(`livysession.livy.dev/${m.target(k, ref).name} deleted\n`);
        }
      }),
    );

  cli
    .command("wake")
    .description("demand a LivySession (starts it again after an idle teardown) and wait until it is Ready")
    .argument("<name>", "NAME or NAMESPACE/NAME")
    .option("--timeout <duration>", "how long to wait for Ready (0: do not wait)", "5m")
    .action((ref: string, o: { timeout: string }) =>
      withKube(async (k, m) => {
        const { namespace, name } = await m.wake(k, ref);
        const timeoutMs = durationMs("--timeout", o.timeout) ?? 300_000;
        if (timeoutMs === 0) {
          out(
            renderJson(
              { namespace, name, woken: true },
              g().output,
              () => `livysession.livy.dev/${name} woken`,
            ),
          );
          return;
        }
        const { resolveLivySession } = await import("../livy/kube.ts");
        const endpoint = await resolveLivySession(k.kube, namespace, name, { wake: false, timeoutMs });
        out(
          renderJson(endpoint, g().output, (e) => {
            const ep = e as { serverURL: string; sessionId: number };
            return `${ep.serverURL}/sessions/${ep.sessionId}`;
          }),
        );
      }),
    );

  for (const [verb, suspend] of [
    ["suspend", true],
    ["resume", false],
  ] as const) {
    cli
      .command(verb)
      .description(
        suspend
          ? "set spec.suspend: the operator tears the server down and deploys nothing until resumed"
          : "clear spec.suspend: the operator starts the session again",
      )
      .argument("<name>", "NAME or NAMESPACE/NAME")
      .action((ref: string) =>
        withKube(async (k, m) => {
          const obj = await m.setSuspend(k, ref, suspend);
          if (g().output === "text" || g().output === "wide")
            out(`livysession.livy.dev/${obj.metadata.name} ${suspend ? "suspended" : "resumed"}\n`);
          else out(renderLivySessions([obj], g().output));
        }),
      );
  }

  cli
    .command("logs")
    .description(
      "the Livy session's log (the Spark driver's output) of a LivySession, or of -s ID with --url",
    )
    .argument("[name]", "the LivySession (NAME or NAMESPACE/NAME)")
    .option("-s, --session <id>", "a Livy session id (with --url)")
    .option("-f, --follow", "keep printing new lines until interrupted")
    .option("--tail <n>", "lines to print first", "100")
    .action(async (ref: string | undefined, o: { session?: string; follow?: boolean; tail: string }) => {
      const tail = nonNegativeInt("--tail", o.tail);
      const { signal, done } = interruptible();
      const { client, sessionId } = await livyTarget(
        { ...(ref ? { livysession: ref } : {}), ...(o.session ? { session: o.session } : {}) },
        signal,
        0,
      );
      try {
        const id = requireSession(sessionId);
        let last: string[] = (await client.sessionLog(id, { size: tail })).log;
        if (g().output === "json" || g().output === "yaml") {
          out(renderJson({ id, log: last }, g().output, () => ""));
          return;
        }
        if (last.length) out(`${last.join("\n")}\n`);
        while (o.follow && !signal.aborted) {
          await sleep(1_000, signal).catch(() => {});
          if (signal.aborted) break;
          const now = (await client.sessionLog(id, { size: 200 })).log;
          const fresh = newLines(last, now);
          if (fresh.length) out(`${fresh.join("\n")}\n`);
          last = now;
        }
      } finally {
        done();
        await client.close();
      }
    });

  // ------------------------------------------------------------------------------ statements

  cli.commandsGroup("Statements:");

  cli
    .command("run")
    .description(
      "run code in a Livy session and print its result; the code comes from the argument, --file, or stdin ('-')",
    )
    .argument("[code]", "the code; '-' or absent: read stdin")
    .addOption(livysessionOption())
    .option("-s, --session <id>", "Livy session id (with --url; with --livysession: its current session)")
    .option("-f, --file <path>", "read the code from this file")
    .addOption(new Option("--kind <kind>", "statement kind").choices(["spark", "pyspark", "sparkr", "sql"]))
    .option("--timeout <duration>", "cancel the statement when it has not finished by then")
    .option(
      "--wait <duration>",
      "how long to wait for the session to take statements: a LivySession to be Ready (woken when idle), a " +
        "starting Livy session to be idle. Default 5m with --livysession, 0 with --url: 0 fails at once (exit 3)",
    )
    .option("--save <file>", "write an image result's bytes to this file")
    .action(async (code: string | undefined, o: Record<string, string | undefined>) => {
      const { signal, done } = interruptible();
      const waitMs = durationMs("--wait", o.wait) ?? (o.livysession ? 300_000 : 0);
      const source = await readCode(code, o.file);
      const { client, sessionId } = await livyTarget(o, signal, waitMs);
      try {
        const session: InteractiveSession = client.session(requireSession(sessionId), {
          mode: waitMs === 0 ? "failFast" : "resilient",
          ...(waitMs === 0 ? {} : { waitTimeoutMs: waitMs }),
        });
        const timeoutMs = durationMs("--timeout", o.timeout);
        const handle = await session.submit(source, {
          signal,
          ...(o.kind ? { kind: o.kind as StatementKind } : {}),
          ...(timeoutMs === undefined ? {} : { timeoutMs }),
        });
        const stop = g().output === "text" ? showProgress(handle) : () => {};
        try {
          const result = await handle.result;
          stop();
          if (o.save && result.kind === "image")
            await writeFile(o.save, Buffer.from(result.base64, "base64"));
          out(renderResult(result, g().output));
        } finally {
          stop();
        }
      } finally {
        done();
        await client.close();
      }
    });

  cli
    .command("statements")
    .description("a Livy session's statements, newest first")
    .addOption(livysessionOption())
    .option("-s, --session <id>", "Livy session id (with --url)")
    .option("--size <n>", "how many", "20")
    .action(async (o: { livysession?: string; session?: string; size: string }) => {
      const { client, sessionId } = await livyTarget(o, AbortSignal.timeout(600_000), 0);
      try {
        const list = await client.listStatements(requireSession(sessionId), {
          order: "desc",
          size: nonNegativeInt("--size", o.size),
        });
        out(renderStatements(list.statements, g().output));
      } finally {
        await client.close();
      }
    });

  cli
    .command("cancel")
    .description("cancel a statement")
    .argument("<statement>", "statement id")
    .addOption(livysessionOption())
    .option("-s, --session <id>", "Livy session id (with --url)")
    .action(async (statementArg: string, o: { livysession?: string; session?: string }) => {
      const { client, sessionId } = await livyTarget(o, AbortSignal.timeout(600_000), 0);
      try {
        const res = await client.cancelStatement(
          requireSession(sessionId),
          nonNegativeInt("statement", statementArg),
        );
        out(renderJson(res, g().output, (v) => (v as { msg: string }).msg));
      } finally {
        await client.close();
      }
    });

  // ------------------------------------------------------------------------------ Livy servers

  cli.commandsGroup("Livy servers (--url, or a LivySession's server with --livysession):");

  const server = cli.command("server").description("a Livy server's own sessions and version");
  server
    .command("sessions")
    .description("list the server's Livy sessions")
    .addOption(livysessionOption())
    .action(async (o: { livysession?: string }) => {
      const { client } = await livyTarget(o, AbortSignal.timeout(600_000), 0);
      try {
        out(renderSessions((await client.listSessions({ size: 1000 })).sessions, g().output));
      } finally {
        await client.close();
      }
    });
  server
    .command("get")
    .description("show a Livy session, or one of its statements")
    .argument("<session>", "Livy session id")
    .argument("[statement]", "statement id")
    .action(async (sessionArg: string, statementArg: string | undefined) => {
      const { client, sessionId } = await livyTarget(
        { session: sessionArg },
        AbortSignal.timeout(600_000),
        0,
      );
      try {
        const id = requireSession(sessionId);
        const value =
          statementArg === undefined
            ? await client.getSession(id)
            : await client.getStatement(id, nonNegativeInt("statement", statementArg));
        out(renderJson(value, g().output, (v) => JSON.stringify(v, null, 2)));
      } finally {
        await client.close();
      }
    });
  server
    .command("version")
    .description("the Livy server's version")
    .addOption(livysessionOption())
    .action(async (o: { livysession?: string }) => {
      const { client } = await livyTarget(o, AbortSignal.timeout(600_000), 0);
      try {
        const v = await client.version();
        out(renderJson(v, g().output, (x) => (x as { version: string }).version));
      } finally {
        await client.close();
      }
    });

  cli.commandsGroup("Other:");

  cli
    .command("version")
    .description("print livyctl's version")
    .action(() => {
      out(renderJson({ livyctl: VERSION }, g().output, () => VERSION));
    });

  cli
    .command("completion")
    .description(
      `print a shell completion script: ${SHELLS.join(", ")} (e.g. source <(${name} completion bash))`,
    )
    .argument("<shell>", SHELLS.join(" | "))
    .action((shell: string) => {
      if (!(SHELLS as readonly string[]).includes(shell))
        throw new UsageError(`completion: unknown shell ${shell} (${SHELLS.join(", ")})`);
      out(completionScript(shell as (typeof SHELLS)[number], name));
    });

  return cli;
}

/** Lines of `now` after the part that overlaps the end of `before` (Livy keeps only the last lines). */
export function newLines(before: string[], now: string[]): string[] {
  for (let overlap = Math.min(before.length, now.length); overlap > 0; overlap--) {
    let same = true;
    for (let i = 0; i < overlap && same; i++) same = before[before.length - overlap + i] === now[i];
    if (same) return now.slice(overlap);
  }
  return now;
}

export async function main(argv: string[], name = "livyctl"): Promise<number> {
  const cli = program(name);
  // `__complete WORD...` (hidden): the words are the command line being completed, not options for us
  if (argv[2] === "__complete") {
    process.stdout.write(await complete(cli, argv.slice(3)));
    return EXIT.ok;
  }
  try {
    await cli.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const format = (cli.opts<GlobalOptions>().output ?? "text") as OutputFormat;
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n`);
      return EXIT.usage;
    }
    process.stderr.write(renderError(err, format === "json" || format === "yaml" ? format : "text"));
    return exitCodeOf(err);
  }
}
