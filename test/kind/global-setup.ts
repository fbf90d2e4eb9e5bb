import { existsSync } from "node:fs";
import { delimiter, dirname } from "node:path";
import { goBinaries } from "../testbed/paths.ts";
import { kindTools } from "./node-image.ts";

/**
 * The kind project's setup: no test bed (the suite makes its own cluster), only the tools on PATH that the
 * test bed's build made: kubectl and helm, and kind when it was built here rather than installed.
 */
export default function setup(): void {
  const dirs = goBinaries().binDirs.filter((d) => existsSync(d));
  const kind = kindTools().kind;
  if (existsSync(kind)) dirs.push(dirname(kind));
  process.env.PATH = [process.env.PATH ?? "", ...dirs].join(delimiter);
}
