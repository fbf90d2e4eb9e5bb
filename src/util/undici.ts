/**
 * The parts of undici this project uses (Agent, Pool, Client, and their request()), loaded without the
 * package's index.
 *
 * Why by hand: undici's index (`import … from "undici"`) loads all of undici before it returns: fetch,
 * WebSocket, EventSource, the cache stores (node:sqlite among them), mocks, proxies, interceptors. The
 * operator, the gateway and the Livy client use none of that, and loading it costs their processes RSS for
 * code they never run (bench/RESULTS.md 17.1: 4.4 MiB, measured in a bare process beside this project's
 * other dependencies).
 * The package has no `exports` map, so its files are importable; the three classes below are what its
 * index exports under these names, and the index's one piece of wiring (the request/stream/… methods on
 * every Dispatcher) is done here the same way. The version is pinned by package-lock.json, and
 * test/unit/undici.test.ts checks that these are the index's own classes, so an upgrade that moves a
 * file fails a test, not a user.
 */
import { createRequire } from "node:module";
import type * as Undici from "undici";

const require = createRequire(import.meta.url);

const DispatcherBase = require("undici/lib/dispatcher/dispatcher.js") as { prototype: object };
// what undici's index does (`Object.assign(Dispatcher.prototype, api)`): request(), stream(), pipeline(),
// connect(), upgrade() on Client, Pool and Agent
Object.assign(DispatcherBase.prototype, require("undici/lib/api/index.js"));

export const Agent = require("undici/lib/dispatcher/agent.js") as typeof Undici.Agent;
export const Pool = require("undici/lib/dispatcher/pool.js") as typeof Undici.Pool;
export const Client = require("undici/lib/dispatcher/client.js") as typeof Undici.Client;
export type Agent = Undici.Agent;
export type Pool = Undici.Pool;
export type Client = Undici.Client;
export type { Dispatcher } from "undici";

/** undici's `request(url, { dispatcher, … })` for a URL: the dispatcher's request() with origin and path. */
export function requestUrl(
  dispatcher: Undici.Dispatcher,
  url: string | URL,
  opts: Omit<Undici.Dispatcher.RequestOptions, "origin" | "path">,
): Promise<Undici.Dispatcher.ResponseData> {
  const u = typeof url === "string" ? new URL(url) : url;
  return dispatcher.request({ ...opts, origin: u.origin, path: `${u.pathname}${u.search}` });
}
