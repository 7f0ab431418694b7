// How `aplspawn exec` enters a container: a process that gets no more than the container's own
// processes have. The host's setpriv drops the capability bounding set to the container init's and
// sets no_new_privs before the host's nsenter joins the init's namespaces (all of them, the PID
// namespace included) and root; the process starts in the init's cgroups, with a clean environment.
// Only host binaries run with host privileges: what runs inside is the container's, already confined.
// A container in a user namespace (containers.privateUsers): joining it gives the full capability
// bounding set of that namespace (the kernel resets it), so the container's own setpriv drops it to
// the init's again before the command; its caps were only ever good inside the container's namespace.
import type { Host } from "../host/host.js";
import { cgroupsOf } from "./cgroups.js";

/** What to run, with which environment, started in which cgroups. */
export interface EnterCommand {
  cmd: string;
  args: string[];
  env: Record<string, string>;
  cgroups: string[];
}

/** The capability numbers in a /proc/PID/status mask ("CapBnd: 000001ffffffffff"). */
export function capabilities(status: string, field = "CapBnd"): number[] {
  const hex = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, "m").exec(status)?.[1];
  if (!hex) throw new Error(`no ${field} in the process status`);
  const mask = BigInt(`0x${hex}`);
  const out: number[] = [];
  for (let i = 0; i < 64; i++) if ((mask >> BigInt(i)) & 1n) out.push(i);
  return out;
}

/** The environment of an entered process: nothing of ours, only what a root login inside has. */
function cleanEnv(term: string | undefined): Record<string, string> {
  return {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: "/root",
    USER: "root",
    LOGNAME: "root",
    container: "systemd-nspawn",
    ...(term && /^[\w.+-]+$/.test(term) ? { TERM: term } : {}),
  };
}

/** The command that runs `command` inside the container whose init is `leader`. */
export async function enterCommand(
  host: Host,
  leader: number,
  command: readonly string[],
  term: string | undefined,
): Promise<EnterCommand> {
  const caps = capabilities(await host.fs.readFile(`/proc/${leader}/status`));
  const cgroups = [...(await cgroupsOf(host, leader)).values()];
  const bounding = `--bounding-set=-all${caps.map((c) => `,+cap_${c}`).join("")}`;
  const ownUserns =
    (await host.fs.readlink(`/proc/${leader}/ns/user`)) !== (await host.fs.readlink("/proc/self/ns/user"));
  return {
    cmd: "setpriv",
    args: [
      bounding,
      "--inh-caps=-all",
      "--ambient-caps=-all",
      "--clear-groups",
      "--no-new-privs",
      "--",
      "nsenter",
      `--target=${leader}`,
      "--all",
      "--root",
      "--wd",
      "--",
      ...(ownUserns ? ["setpriv", bounding, "--inh-caps=-all", "--ambient-caps=-all", "--"] : []),
      ...command,
    ],
    env: cleanEnv(term),
    cgroups,
  };
}
