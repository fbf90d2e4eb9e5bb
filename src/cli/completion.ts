/**
 * Shell completion. `livyctl __complete WORD... CURRENT` answers in cobra's `__complete` format (a candidate
 * per line, then `:<directive>`), the format kubectl expects from a plugin's `kubectl_complete-<name>`
 * (kubectl ≥ 1.26), so the same answer serves `kubectl livy <TAB>` and the scripts below. Candidates are
 * the commands and flags commander knows, and for names the LivySessions, namespaces and contexts the
 * kubeconfig leads to; a failure to reach Kubernetes gives no candidates rather than an error.
 */
import type { Command, Option } from "commander";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

/** cobra's ShellCompDirective: 4 = no file completion, 0 = default (files). */
const NO_FILES = 4;
const FILES = 0;

const FLAG_VALUES: Record<string, readonly string[]> = {
  "--output": ["text", "json", "yaml", "wide", "name"],
  "-o": ["text", "json", "yaml", "wide", "name"],
  "--kind": ["spark", "pyspark", "sparkr", "sql"],
  "--failure-policy": ["FailFast", "Recover"],
};
const FILE_FLAGS = new Set(["--kubeconfig", "-f", "--file", "--filename", "--save"]);
/** Commands whose positional arguments are LivySession names. */
const NAME_COMMANDS = new Set(["get", "describe", "delete", "wake", "suspend", "resume", "logs"]);

export async function complete(cli: Command, words: string[]): Promise<string> {
  const current = words.at(-1) ?? "";
  const before = words.slice(0, -1);
  const answer = (candidates: string[], directive = NO_FILES) =>
    `${[...candidates.filter((c) => c.startsWith(current)), `:${directive}`].join("\n")}\n`;

  // the command path, and the flags given so far
  let cmd: Command = cli;
  const flags: Record<string, string> = {};
  const positional: string[] = [];
  for (let i = 0; i < before.length; i++) {
    const w = before[i] as string;
    if (w.startsWith("-")) {
      const [flag, inline] = w.split("=", 2) as [string, string | undefined];
      const opt = findOption(cmd, flag) ?? findOption(cli, flag);
      if (opt?.required && inline === undefined) flags[opt.long ?? flag] = before[++i] ?? "";
      else flags[opt?.long ?? flag] = inline ?? "true";
      continue;
    }
    const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (sub && positional.length === 0) cmd = sub;
    else positional.push(w);
  }

  // the value of a flag
  const prev = before.at(-1);
  if (prev?.startsWith("-") && !prev.includes("=")) {
    const opt = findOption(cmd, prev) ?? findOption(cli, prev);
    if (opt?.required) {
      if (FILE_FLAGS.has(prev)) return answer([], FILES);
      const long = opt.long ?? prev;
      if (FLAG_VALUES[long]) return answer([...(FLAG_VALUES[long] ?? [])]);
      if (long === "--namespace") return answer(await kubeNames(flags, "namespaces"));
      if (long === "--context") return answer(await contexts(flags));
      if (long === "--livysession") return answer(await kubeNames(flags, "livysessions"));
      return answer([]);
    }
  }
  if (current.startsWith("-")) {
    const names = [...cmd.options, ...(cmd === cli ? [] : cli.options)].flatMap((o) =>
      [o.long, o.short].filter((x): x is string => Boolean(x)),
    );
    return answer(names);
  }
  if (cmd === cli)
    return answer(
      cli.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden).map((c) => c.name()),
    );
  if (cmd.commands.length > 0) return answer(cmd.commands.map((c) => c.name()));
  if (cmd.name() === "completion") return answer([...SHELLS]);
  if (NAME_COMMANDS.has(cmd.name())) {
    const taken = new Set(positional);
    return answer((await kubeNames(flags, "livysessions")).filter((n) => !taken.has(n)));
  }
  if (cmd.name() === "run") return answer([], FILES);
  return answer([]);
}

function findOption(cmd: Command, flag: string): Option | undefined {
  return cmd.options.find((o) => o.long === flag || o.short === flag);
}

/** LivySession or namespace names, from the kubeconfig and flags given so far; none when unreachable. */
async function kubeNames(
  flags: Record<string, string>,
  what: "livysessions" | "namespaces",
): Promise<string[]> {
  try {
    const { connectKube, LIVYSESSION_RESOURCE, resourcePath } = await import("../livy/kube.ts");
    const k = await connectKube({
      kubeconfig: flags["--kubeconfig"],
      context: flags["--context"],
      namespace: flags["--namespace"],
    });
    try {
      const path =
        what === "namespaces" ? "/api/v1/namespaces" : resourcePath(LIVYSESSION_RESOURCE, k.namespace);
      const list = await k.kube.get<{ items: Array<{ metadata?: { name?: string } }> }>(path, {
        timeoutMs: 5_000,
      });
      return list.items.map((i) => i.metadata?.name ?? "").filter(Boolean);
    } finally {
      await k.close();
    }
  } catch {
    return [];
  }
}

async function contexts(flags: Record<string, string>): Promise<string[]> {
  try {
    const { KubeConfig } = await import("@kubernetes/client-node");
    const kc = new KubeConfig();
    if (flags["--kubeconfig"]) kc.loadFromFile(flags["--kubeconfig"]);
    else kc.loadFromDefault();
    return kc.getContexts().map((c) => c.name);
  } catch {
    return [];
  }
}

/** The script that makes `name <TAB>` ask `name __complete ...`. */
export function completionScript(shell: Shell, name: string): string {
  const fn = `__${name.replace(/[^A-Za-z0-9]/g, "_")}_complete`;
  switch (shell) {
    case "bash":
      return `# bash completion for ${name}: source <(${name} completion bash)
${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  local out directive
  out=$("\${COMP_WORDS[0]}" __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return
  directive=\${out##*:}
  out=\${out%:*}
  COMPREPLY=($(compgen -W "$out" -- "$cur"))
  if [[ \${#COMPREPLY[@]} -eq 0 && "$directive" == 0 ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F ${fn} ${name}
`;
    case "zsh":
      return `#compdef ${name}
# zsh completion for ${name}: source <(${name} completion zsh)
${fn}() {
  local -a lines
  lines=("\${(@f)$(\${words[1]} __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  local directive=\${lines[-1]#:}
  lines=("\${(@)lines[1,-2]}")
  if (( \${#lines} > 0 )); then
    compadd -- "\${lines[@]}"
  elif [[ "$directive" == 0 ]]; then
    _files
  fi
}
compdef ${fn} ${name}
`;
    case "fish":
      return `# fish completion for ${name}: ${name} completion fish | source
function ${fn}
  set -l args (commandline -opc)[2..-1] (commandline -ct)
  ${name} __complete $args 2>/dev/null | string match -v -r '^:'
end
complete -c ${name} -f -a '(${fn})'
`;
  }
}
