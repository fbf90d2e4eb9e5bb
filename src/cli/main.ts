#!/usr/bin/env node
/** livyctl: see program.ts. */
import { main } from "./program.ts";

process.exitCode = await main(process.argv);
