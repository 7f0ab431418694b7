// The last check of `run up`: real Ansible reaches every host through the generated inventory
// (when ansible is installed and inventory.ping is on). Nothing to undo: it only reads.
import { type HostContext, lastLines } from "../../src/host/host.js";
import { ansibleConfigEnv } from "../../src/lab/ansible-config.js";
import { execAsOwner, type Owner } from "../../src/lab/owner.js";
import { printable } from "../../src/runner/report.js";
import { defineTask } from "../../src/runner/task.js";

/** Parameters. */
export interface AnsiblePingParams {
  inventory: string;
  group: string;
  enabled: boolean;
  /**
   * Who Ansible runs as: the lab's owner (with their inventory, as they will), or the unprivileged
   * account of a lab without owner; without either the ping is skipped (never run as root).
   */
  owner?: Owner;
  /** That account's empty ansible.cfg (config/paths.ts ownerFiles), read instead of one it must not trust. */
  emptyConfig?: string;
}

async function ping(ctx: HostContext, p: AnsiblePingParams & { owner: Owner }, warn = (_m: string) => {}) {
  const config = await ansibleConfigEnv(ctx.host, p.owner, {
    env: process.env,
    empty: p.emptyConfig ?? "",
    warn,
  });
  return execAsOwner(ctx, p.owner, "ansible", ["-i", p.inventory, "-m", "ping", p.group], {
    readOnly: true,
    timeoutMs: 300_000,
    // Ad-hoc output in the default (minimal) shape whatever callbacks an ansible.cfg loads: it is parsed.
    env: { ANSIBLE_NOCOLOR: "1", ANSIBLE_FORCE_COLOR: "0", ANSIBLE_LOAD_CALLBACK_PLUGINS: "0", ...config },
  });
}

/** The account the ping runs as (skip() has made sure there is one). */
function as(p: AnsiblePingParams): AnsiblePingParams & { owner: Owner } {
  if (!p.owner) throw new Error("no account to run Ansible as");
  return p as AnsiblePingParams & { owner: Owner };
}

/**
 * Ansible exits 0 when no host matched (an inventory missing or empty, a group with no host): the
 * ping holds only when it reached hosts, every one of them.
 */
function reachedAll(r: { exitCode: number; stdout: string }): boolean {
  return r.exitCode === 0 && / \| SUCCESS /.test(r.stdout);
}

/** Checks the lab with `ansible -m ping`; fails naming the unreachable hosts. */
export const labAnsiblePing = defineTask<AnsiblePingParams, null>({
  kind: "lab.ansible-ping",
  title: (p) =>
    `Checking the lab with ansible -i ${p.inventory} -m ping ${p.group}${p.owner ? ` as ${p.owner.name}` : ""}`,
  async skip(ctx, p) {
    if (!p.enabled) return "inventory.ping is off";
    if (!(await ctx.host.which("ansible"))) return "ansible is not installed";
    // Never as root against containers that run other people's code.
    if (!p.owner)
      return "no unprivileged account to run Ansible as (scripts/install.sh makes aplspawn; or --ansible-user)";
    return undefined;
  },
  async check(ctx, p) {
    return reachedAll(await ping(ctx, as(p)));
  },
  async run(ctx, p) {
    const r = await ping(ctx, as(p), (m) => ctx.info(`warning: ${m}`));
    if (reachedAll(r)) return null;
    const bad = r.stdout
      .split("\n")
      .filter((l) => / \| (UNREACHABLE|FAILED)/.test(l))
      .map((l) => l.split(" | ")[0]);
    throw new Error(
      `ansible could not reach ${bad.length ? bad.join(", ") : "every host"} (exit code ${r.exitCode}): ${printable(lastLines(`${r.stdout}\n${r.stderr}`, 8))}`,
    );
  },
});
