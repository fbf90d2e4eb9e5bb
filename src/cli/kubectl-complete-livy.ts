#!/usr/bin/env node
/**
 * kubectl_complete-livy: kubectl (≥ 1.26) runs it with the words after `kubectl livy` to complete
 * `kubectl livy <TAB>`, and reads cobra's __complete format, which `__complete` writes.
 */
import { main } from "./program.ts";

const [node = "node", script = "kubectl_complete-livy", ...words] = process.argv;
process.exitCode = await main([node, script, "__complete", ...words], "kubectl livy");
