#!/usr/bin/env node
/** `kubectl livy ...`: kubectl runs the executable kubectl-livy on the PATH for it (a kubectl plugin). */
import { main } from "./program.ts";

process.exitCode = await main(process.argv, "kubectl livy");
