/** Shared setup of the Livy client's unit tests: an in-process stand-in and clients that get closed. */
import { afterAll, afterEach, beforeAll } from "vitest";
import { LivyClient, type LivyClientOptions } from "../../src/livy/index.ts";
import { type Standin, type StandinOptions, startStandin } from "../standin/server.ts";

export interface Fixture {
  standin: Standin;
  /** A client closed after the test. */
  client(options?: Partial<LivyClientOptions>): LivyClient;
  /** Creates a pyspark session and waits until it is idle. */
  idleSession(client: LivyClient): Promise<number>;
}

/**
 * One stand-in per test file, every test starting from a reset stand-in. Sessions start fast, and cancels
 * interrupt sleeps at once (real Livy lets a sleep run on; livy-standin.test.ts covers that mode).
 */
export function useStandin(options: StandinOptions = {}): Fixture {
  const config: StandinOptions = {
    sessionStartupMs: 20,
    cancelDelayMs: 10,
    blockingSleep: false,
    ...options,
  };
  let standin: Standin | undefined;
  const clients: LivyClient[] = [];
  beforeAll(async () => {
    standin = await startStandin(config);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    standin?.control.reset();
  });
  afterAll(async () => {
    await standin?.close();
  });
  return {
    get standin(): Standin {
      if (!standin) throw new Error("stand-in not started");
      return standin;
    },
    client(opts = {}) {
      if (!standin) throw new Error("stand-in not started");
      const c = new LivyClient({ baseUrl: standin.url, ...opts });
      clients.push(c);
      return c;
    },
    async idleSession(client) {
      const s = await client.createSession({ kind: "pyspark" });
      await client.session(s.id).waitForIdle({ timeoutMs: 5_000, pollMs: 5 });
      return s.id;
    },
  };
}
