#!/usr/bin/env node
// npm run testbed -- build|up|down|status|env|import-image TAR
import {
  build,
  defaultStateDir,
  down,
  envLines,
  importImageIntoNode,
  readState,
  status,
  up,
} from "./testbed.ts";

const usage =
  "usage: npm run testbed -- build|up [--image IMAGE.tar]...|down|status|env|import-image IMAGE.tar [--state-dir DIR]";
const args = process.argv.slice(2);
const cmd = args[0];
const dirFlag = args.indexOf("--state-dir");
const stateDir = dirFlag >= 0 && args[dirFlag + 1] ? args[dirFlag + 1] : defaultStateDir();

async function main(): Promise<number> {
  switch (cmd) {
    case "build":
      await build();
      return 0;
    case "up": {
      // --image TAR (repeatable): imported into the real node before its kubelet starts
      const images = args.flatMap((a, i) => (a === "--image" && args[i + 1] ? [args[i + 1] as string] : []));
      const state = await up(stateDir, { nodeImages: images });
      process.stdout.write(`${envLines(state)}\n`);
      process.stderr.write(`[testbed] use it with: eval "$(npm run --silent testbed -- env)"\n`);
      return 0;
    }
    case "down":
      await down(stateDir);
      return 0;
    case "import-image": {
      const tar = args[1];
      if (!tar || tar.startsWith("--")) {
        process.stderr.write(`${usage}\n`);
        return 2;
      }
      await importImageIntoNode(tar, stateDir);
      return 0;
    }
    case "status":
      process.stdout.write(`${status(stateDir)}\n`);
      return 0;
    case "env": {
      const state = readState(stateDir);
      if (!state) {
        process.stderr.write("[testbed] the test bed is down: npm run testbed -- up\n");
        return 1;
      }
      process.stdout.write(`${envLines(state)}\n`);
      return 0;
    }
    default:
      process.stderr.write(`${usage}\n`);
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[testbed] ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
