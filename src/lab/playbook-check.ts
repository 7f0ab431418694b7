// The playbook under test, checked before anything runs: `validate`, and `run up` before it changes
// the host, ask ansible-playbook --syntax-check what it makes of provision.playbook (the plays,
// their roles and imports, the files `-e @FILE` names), so a broken playbook shows in seconds, not
// after the whole lab came up.
import type { HostContext } from "../host/host.js";
import { untrustedConfig } from "./ansible-config.js";
import { execAsOwner, type Owner } from "./owner.js";

/** What a check of the playbook found: nothing, a problem, or that it could not be asked. */
export type PlaybookCheck =
  | { ok: true }
  | { ok: false; problem: string }
  /** missing: ansible-playbook is not installed (then the playbook cannot run at all). */
  | { ok: "unchecked"; why: string; missing?: true };

/**
 * Check the playbook at `path` (absolute) with the arguments provision gives it, as the user who
 * will run it (the lab's owner, whose roles and collections it may use): it must be a file, and
 * ansible-playbook --syntax-check must accept it. Reads only.
 */
export async function checkPlaybook(
  ctx: HostContext,
  path: string,
  args: readonly string[],
  owner?: Owner,
): Promise<PlaybookCheck> {
  const st = await ctx.host.fs.stat(path);
  if (!st) return { ok: false, problem: `${path} does not exist` };
  if (!st.isFile) return { ok: false, problem: `${path} is not a file (a playbook is expected)` };
  if (!(await ctx.host.which("ansible-playbook")))
    return {
      ok: "unchecked",
      why: "ansible-playbook is not installed (apt-get install ansible-core)",
      missing: true,
    };
  // Ansible never runs as root against a lab, nor with a config another user could have written
  // (src/lab/ansible-config.ts): its checks neither.
  if (!owner && ctx.host.uid() === 0)
    return { ok: "unchecked", why: "there is no unprivileged account to run ansible-playbook as" };
  if (owner) {
    const r = await execAsOwner(ctx, owner, "test", ["-r", path], { readOnly: true });
    if (r.exitCode !== 0)
      return { ok: false, problem: `${path} cannot be read by ${owner.name}, whom Ansible runs as` };
  }
  const cfg = owner ? await untrustedConfig(ctx.host, owner, process.env) : undefined;
  if (cfg) return { ok: "unchecked", why: cfg };
  // An inventory of its own (the lab's may not exist yet): the syntax check reaches no host.
  const argv = ["--syntax-check", "-i", "localhost,", ...args, path];
  const opts = {
    readOnly: true,
    timeoutMs: 120_000,
    env: { ANSIBLE_NOCOLOR: "1", ANSIBLE_FORCE_COLOR: "0" },
  };
  const r = owner
    ? await execAsOwner(ctx, owner, "ansible-playbook", argv, opts)
    : await ctx.host.exec("ansible-playbook", argv, { ...opts, allowFail: true, signal: ctx.signal });
  if (r.exitCode === 0) return { ok: true };
  return {
    ok: false,
    problem: `ansible-playbook --syntax-check refuses ${path}: ${syntaxError(`${r.stderr}\n${r.stdout}`) ?? `exit code ${r.exitCode}`}`,
  };
}

/**
 * Ansible's error in one line: its "ERROR!" paragraph (for a YAML error, the YAML parser's words),
 * and where in which file it points.
 */
export function syntaxError(output: string): string | undefined {
  const paragraphs = output.split(/\n\s*\n/).map((p) => p.trim());
  const error = paragraphs.find((p) => p.startsWith("ERROR! "));
  if (!error) return undefined;
  let text = error.slice("ERROR! ".length);
  const yaml = paragraphs.find((p) => p.startsWith("Syntax Error while loading YAML."));
  if (yaml) text = `it is not valid YAML: ${yaml.split("\n").slice(1).join(" ").trim()}`;
  const at = /The error appears to be in '([^']+)': line (\d+), column (\d+)/.exec(output);
  const one = text.replace(/\s*\n\s*/g, " ").trim();
  return `${one.length > 300 ? `${one.slice(0, 297)}...` : one}${at ? ` (${at[1]}, line ${at[2]}, column ${at[3]})` : ""}`;
}
