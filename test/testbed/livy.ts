/**
 * Real Apache Livy on real Spark for the test bed: the install built by build/livy.sh (cached by version)
 * and the command that runs one Livy server in the foreground in local mode.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cacheDir, TESTBED_DIR, versions } from "./paths.ts";

export interface LivyInstall {
  livyHome: string;
  sparkHome: string;
  python: string;
  javaHome?: string;
}

export interface LivyServerOptions {
  port: number;
  /** conf/ and logs/ are written here; it is also the server's working directory. */
  workDir: string;
  /** `livy.server.session.timeout` (default 1h: the operator manages idleness itself). */
  sessionTimeout?: string;
  /** `livy.server.session.state-retain.sec`: how long a finished session stays readable (default 120s). */
  stateRetain?: string;
  /** Extra `livy.*` settings, written last. */
  conf?: Record<string, string>;
}

export interface LivyServerCommand {
  command: string;
  args: string[];
  /** Variables to set over the caller's environment. */
  env: Record<string, string>;
  cwd: string;
}

/** Where build/livy.sh puts (or has put) Livy and Spark for the versions in build/versions.env. */
export function livyInstallPaths(): LivyInstall {
  const v = versions();
  const c = cacheDir();
  const venv = join(c, `spark-venv-${v.SPARK_VERSION}`);
  const install: LivyInstall = {
    livyHome: join(c, `livy-${v.LIVY_VERSION}`),
    sparkHome: join(venv, "spark-home"),
    python: join(venv, "bin", "python"),
  };
  const javaHome = process.env.JAVA_HOME;
  if (javaHome) install.javaHome = javaHome;
  return install;
}

function isComplete(install: LivyInstall): boolean {
  return (
    existsSync(join(install.livyHome, ".complete")) &&
    existsSync(join(install.python, "..", "..", ".complete")) &&
    existsSync(join(livyClientsVenv(), ".complete"))
  );
}

/** The venv with the plain Livy clients the gateway is tested with: sparkmagic, jupyter nbconvert. */
export function livyClientsVenv(): string {
  return join(cacheDir(), `livy-clients-${versions().SPARKMAGIC_VERSION}`);
}

/** Builds Livy and Spark with build/livy.sh when the cache lacks them (its output goes to stderr). */
export async function ensureLivyInstall(): Promise<LivyInstall> {
  const install = livyInstallPaths();
  if (isComplete(install)) return install;
  const script = join(TESTBED_DIR, "build", "livy.sh");
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn("bash", [script], { stdio: ["ignore", 2, 2] });
    child.on("error", reject);
    child.on("exit", (c) => resolve(c));
  });
  if (code !== 0) throw new Error(`${script} exited with ${code}: see the [testbed-build] lines above`);
  if (!isComplete(install))
    throw new Error(`${script} succeeded but left no complete install in ${cacheDir()}`);
  return install;
}

/** The options Livy's bin/livy-server gives the server JVM so that it runs on Java 17. */
const JAVA17_OPTIONS = [
  "-XX:+IgnoreUnrecognizedVMOptions",
  "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
  "--add-opens=java.base/java.lang=ALL-UNNAMED",
  "--add-opens=java.base/java.nio=ALL-UNNAMED",
  "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
  "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
  "--add-opens=java.base/java.net=ALL-UNNAMED",
  "--add-opens=java.base/java.io=ALL-UNNAMED",
  "--add-opens=java.base/sun.util.calendar=ALL-UNNAMED",
  "--add-exports=java.base/sun.net.dns=ALL-UNNAMED",
  "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
  "--add-exports=java.base/sun.security.x509=ALL-UNNAMED",
  "--add-exports=java.base/sun.security.util=ALL-UNNAMED",
];

/** livy.conf for one local-mode server on loopback; every Spark driver it starts runs `local[2]`. */
export function livyConf(opts: LivyServerOptions): Record<string, string> {
  return {
    "livy.server.host": "127.0.0.1",
    "livy.server.port": String(opts.port),
    "livy.spark.master": "local[2]",
    "livy.spark.deploy-mode": "client",
    "livy.rsc.rpc.server.address": "127.0.0.1",
    "livy.rsc.launcher.address": "127.0.0.1",
    "livy.repl.enable-hive-context": "false",
    "livy.server.recovery.mode": "off",
    "livy.server.session.timeout-check": "true",
    "livy.server.session.timeout": opts.sessionTimeout ?? "1h",
    "livy.server.session.state-retain.sec": opts.stateRetain ?? "120s",
    // a driver whose Livy server died (a killed test) stops itself after this long
    "livy.rsc.server.idle-timeout": "2m",
    // how long Livy waits for a new Spark driver to connect back before it kills the session (default 90s):
    // at load average 40-50 on the 2 cores every start took longer, and every session ended `dead`
    "livy.rsc.server.connect.timeout": "10m",
    // every server and driver on the machine takes its RPC port from this range (Livy's default 10000~10010
    // allows about ten live sessions machine-wide; benchmarks and tests run more at once)
    "livy.rsc.launcher.port.range": "10000~10200",
    ...opts.conf,
  };
}

const LOG4J = `log4j.rootCategory=INFO, console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
log4j.logger.org.eclipse.jetty=WARN
`;

/**
 * Spark's own defaults for the drivers Livy launches: small, quiet, no UI port per session. The hosts file
 * keeps the driver's RSC endpoint on loopback: the driver ignores `livy.rsc.rpc.server.address` and
 * advertises RSCConf.findLocalAddress(), which skips a hostname that resolves to 127.x and picks the first
 * non-loopback interface address instead. With the hostname at 0.0.0.0 it advertises "localhost".
 */
function sparkDefaults(hostsFile: string): string {
  return [
    "spark.driver.memory 512m",
    "spark.ui.enabled false",
    "spark.sql.shuffle.partitions 4",
    `spark.driver.extraJavaOptions -Djdk.net.hosts.file=${hostsFile}`,
    "",
  ].join("\n");
}

const SPARK_LOG4J2 = `rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
`;

/**
 * Writes `<workDir>/conf` (livy.conf, log4j.properties) and `<workDir>/spark-conf`, and returns how to run
 * the Livy server in the foreground: java directly, as bin/livy-server would, with its logs on stderr.
 */
export function livyServerCommand(install: LivyInstall, opts: LivyServerOptions): LivyServerCommand {
  const confDir = join(opts.workDir, "conf");
  const sparkConfDir = join(opts.workDir, "spark-conf");
  const logDir = join(opts.workDir, "logs");
  for (const d of [confDir, sparkConfDir, logDir]) mkdirSync(d, { recursive: true });
  const conf = Object.entries(livyConf(opts)).map(([k, v]) => `${k} = ${v}\n`);
  writeFileSync(join(confDir, "livy.conf"), conf.join(""));
  writeFileSync(join(confDir, "log4j.properties"), LOG4J);
  const hostsFile = join(sparkConfDir, "driver-hosts");
  writeFileSync(hostsFile, `0.0.0.0 localhost ${hostname()}\n`);
  writeFileSync(join(sparkConfDir, "spark-defaults.conf"), sparkDefaults(hostsFile));
  writeFileSync(join(sparkConfDir, "log4j2.properties"), SPARK_LOG4J2);

  const env: Record<string, string> = {
    LIVY_HOME: install.livyHome,
    LIVY_CONF_DIR: confDir,
    LIVY_LOG_DIR: logDir,
    SPARK_HOME: install.sparkHome,
    SPARK_CONF_DIR: sparkConfDir,
    SPARK_LOCAL_IP: "127.0.0.1",
    PYSPARK_PYTHON: install.python,
    PYSPARK_DRIVER_PYTHON: install.python,
  };
  if (install.javaHome) env.JAVA_HOME = install.javaHome;
  return {
    command: install.javaHome ? join(install.javaHome, "bin", "java") : "java",
    args: [
      "-Xmx512m",
      ...JAVA17_OPTIONS,
      "-cp",
      `${join(install.livyHome, "jars")}/*:${confDir}`,
      "org.apache.livy.server.LivyServer",
    ],
    env,
    cwd: opts.workDir,
  };
}

/** Resolves once `GET <url>/version` answers 200; rejects after `timeoutMs` with the last failure. */
export async function waitForLivy(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url.replace(/\/$/, "")}/version`, { signal: AbortSignal.timeout(2_000) });
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(250);
  }
  throw new Error(`Livy at ${url} did not answer GET /version within ${timeoutMs} ms (${last})`);
}
