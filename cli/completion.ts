// Shell completion: `aplspawn completion bash|zsh|fish` prints a small script that asks the CLI
// itself what may come next (`aplspawn __complete -- WORD…`, the words typed so far, the last one
// being completed), as cobra-based tools do. What comes next is read from the CLI's own command
// and option definitions; container and set names from the lab's config (-c, as the command would
// read it). A first line ":file" asks the shell for its own file name completion.
import type { Argument, Command, Option } from "commander";

/** The shells completion scripts are printed for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;

/** What the lab's config names (read only when a word needs them). */
export interface LabNames {
  containers: string[];
  sets: string[];
}

/** What a value may be, from an argument's or option's name. */
type ValueKind = "container" | "containers" | "set" | "workflow" | "file" | "shell" | "operation" | "none";

// The original tool's operations (`-o OP`).
const OPERATIONS = [
  "netup",
  "getimage",
  "spawn",
  "status",
  "pids",
  "inventory",
  "stop",
  "netdown",
  "cleanup",
  "names",
];

function optionKind(o: Option): ValueKind | readonly string[] {
  if (o.argChoices) return o.argChoices;
  const name = o.attributeName();
  if (name === "only") return "containers";
  if (name === "set") return "set";
  if (name === "operation") return "operation";
  if (["config", "output", "rootfs", "junit"].includes(name)) return "file";
  return "none";
}

function argumentKind(a: Argument): ValueKind | readonly string[] {
  if (a.argChoices) return a.argChoices;
  const n = a.name();
  if (n === "workflow") return "workflow";
  if (n === "name" || n === "target") return "container";
  if (n === "set") return "set";
  if (n === "shell") return "shell";
  if (n === "file") return "file";
  return "none";
}

const takesValue = (o: Option) => o.required || o.optional;

/** Options a command accepts: its own and its ancestors' (global ones). */
function optionsOf(cmd: Command): Option[] {
  const out: Option[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) out.push(...c.options);
  return out;
}

const findOption = (cmd: Command, word: string) =>
  optionsOf(cmd).find((o) => o.long === word || o.short === word);

/**
 * What may complete the last of `words` (the words after `aplspawn`), given the program's
 * definitions; the lab's names are asked for only when needed. [":file"] asks for file names.
 */
export async function completions(
  program: Command,
  words: readonly string[],
  workflows: readonly string[],
  names: (config: string | undefined) => Promise<LabNames>,
): Promise<string[]> {
  const cur = words.at(-1) ?? "";
  let cmd = program;
  let config: string | undefined;
  let positional = 0;
  let pending: Option | undefined;
  for (const w of words.slice(0, -1)) {
    if (pending) {
      if (pending.attributeName() === "config") config = w;
      pending = undefined;
      continue;
    }
    if (w.startsWith("-")) {
      const [flag, value] = w.split("=", 2);
      const o = findOption(cmd, flag!);
      if (o && takesValue(o) && value === undefined) pending = o;
      if (o?.attributeName() === "config" && value !== undefined) config = value;
      continue;
    }
    const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (sub && positional === 0) cmd = sub;
    else positional++;
  }
  const values = async (kind: ValueKind | readonly string[]): Promise<string[]> => {
    if (typeof kind !== "string") return [...kind];
    switch (kind) {
      case "file":
        return [":file"];
      case "workflow":
        return [...workflows];
      case "shell":
        return [...SHELLS];
      case "operation":
        return OPERATIONS;
      case "set":
        return (await names(config)).sets;
      case "container": {
        const n = await names(config);
        // ssh's [USER@]NAME: the user part stays as typed.
        const at = cur.lastIndexOf("@");
        return at < 0 ? n.containers : n.containers.map((c) => `${cur.slice(0, at + 1)}${c}`);
      }
      case "containers": {
        // --only a,b: each name after the ones already typed (containers and sets).
        const n = await names(config);
        const done = cur.split(",").slice(0, -1);
        const head = done.length ? `${done.join(",")},` : "";
        return [...n.containers, ...n.sets].filter((x) => !done.includes(x)).map((x) => `${head}${x}`);
      }
      default:
        return [];
    }
  };
  let out: string[];
  if (pending) out = await values(optionKind(pending));
  else if (cur.startsWith("-"))
    out = optionsOf(cmd)
      .filter((o) => !o.hidden)
      .flatMap((o) => (o.long ? [o.long] : o.short ? [o.short] : []));
  else {
    const subs = program
      .createHelp()
      .visibleCommands(cmd)
      .filter((c) => c.name() !== "help");
    if (subs.length > 0 && positional === 0) out = subs.map((c) => c.name());
    else {
      const args = cmd.registeredArguments;
      const a = args[Math.min(positional, args.length - 1)];
      // A variadic last argument (a command's words) takes anything: the shell's files.
      out =
        a && !(a.variadic && positional >= args.length - 1 && a.name() === "command")
          ? await values(argumentKind(a))
          : [];
    }
  }
  return out[0] === ":file" ? out : out.filter((c) => c.startsWith(cur));
}

/** The script for a shell: asks `aplspawn __complete` on every Tab. */
export function completionScript(shell: (typeof SHELLS)[number]): string {
  switch (shell) {
    case "bash":
      return `# aplspawn completion for bash: eval "$(aplspawn completion bash)"
_aplspawn() {
  local cur=\${COMP_WORDS[COMP_CWORD]} IFS=$'\\n' out
  out=$(aplspawn __complete -- "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
  if [[ $out == :file* ]]; then
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$out" -- "$cur"))
  fi
}
complete -F _aplspawn aplspawn
`;
    case "zsh":
      return `#compdef aplspawn
# aplspawn completion for zsh: eval "$(aplspawn completion zsh)" (after compinit)
_aplspawn() {
  local -a out
  out=("\${(@f)$(aplspawn __complete -- "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  if [[ \${out[1]} == :file* ]]; then _files; else compadd -- \${out[@]}; fi
}
compdef _aplspawn aplspawn
`;
    case "fish":
      return `# aplspawn completion for fish: aplspawn completion fish | source
function __aplspawn_complete
  set -l words (commandline -opc) (commandline -ct)
  set -e words[1]
  set -l out (aplspawn __complete -- $words 2>/dev/null)
  if test "$out[1]" = ":file"
    __fish_complete_path (commandline -ct)
  else
    printf '%s\\n' $out
  end
end
complete -c aplspawn -f -a '(__aplspawn_complete)'
`;
  }
}
