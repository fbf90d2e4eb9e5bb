/**
 * Runs the Livy stand-in as a process (the test bed starts it this way):
 *   node test/standin/main.ts --port 0 --host 127.0.0.1 [--startup-ms 300] [--statement-ms 0] [--csrf]
 *     [--retained-statements 100] [--cancel-timeout-ms 30000] [--interruptible-sleep]
 * Prints one JSON line `{"url": ...}` on stdout once listening; stops on SIGTERM/SIGINT.
 */
import { parseArgs } from "node:util";
import { startStandin } from "./server.ts";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    "startup-ms": { type: "string" },
    "statement-ms": { type: "string" },
    "retained-statements": { type: "string" },
    "cancel-timeout-ms": { type: "string" },
    "interruptible-sleep": { type: "boolean", default: false },
    csrf: { type: "boolean", default: false },
  },
  strict: true,
});

function num(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) {
    process.stderr.write(`livy-standin: --${name} must be a non-negative number, got ${raw}\n`);
    process.exit(2);
  }
  return n;
}

const startup = num("startup-ms", values["startup-ms"]);
const statement = num("statement-ms", values["statement-ms"]);
const retained = num("retained-statements", values["retained-statements"]);
const cancelTimeout = num("cancel-timeout-ms", values["cancel-timeout-ms"]);
const standin = await startStandin({
  host: values.host,
  port: num("port", values.port) ?? 0,
  csrf: values.csrf,
  blockingSleep: !values["interruptible-sleep"],
  ...(cancelTimeout === undefined ? {} : { cancelTimeoutMs: cancelTimeout }),
  ...(startup === undefined ? {} : { sessionStartupMs: startup }),
  ...(statement === undefined ? {} : { statementRunMs: statement }),
  ...(retained === undefined ? {} : { retainedStatements: retained }),
});
process.stdout.write(`${JSON.stringify({ url: standin.url })}\n`);

const stop = () => {
  void standin.close().then(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
