// How aplspawn reaches a container over SSH: the lab's key, the lab's known_hosts with every
// container's host key pinned in advance, and StrictHostKeyChecking=yes (never "no", never TOFU).
import type { RunScope } from "../host/run-scope.js";
import type { Serializer } from "../host/serial.js";

/** What an ssh command line needs. */
export interface SshTarget {
  ip: string;
  user: string;
  key: string;
  knownHosts: string;
  /**
   * Share one ssh master connection through this socket (ControlMaster=auto): the first call
   * logs in and leaves the master for ControlPersist; later calls run over it without a new login.
   */
  controlPath?: string;
}

/** How long an idle master stays (seconds); it exits by itself after that, removing its socket. */
const CONTROL_PERSIST_S = 60;

/** The -o options that pin host keys to the lab's known_hosts. */
export function pinnedOptions(knownHosts: string): string[] {
  return [
    "-o",
    `UserKnownHostsFile=${knownHosts}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "StrictHostKeyChecking=yes",
  ];
}

/** argv (after `ssh`) for a non-interactive command; `-F /dev/null` keeps the user's config out of checks. */
export function sshBatchArgs(t: SshTarget, command: readonly string[], connectTimeoutS = 3): string[] {
  return [
    "-F",
    "/dev/null",
    "-i",
    t.key,
    "-o",
    "IdentitiesOnly=yes",
    ...pinnedOptions(t.knownHosts),
    "-o",
    "BatchMode=yes",
    "-o",
    `ConnectTimeout=${connectTimeoutS}`,
    ...(t.controlPath
      ? [
          "-o",
          "ControlMaster=auto",
          "-o",
          `ControlPersist=${CONTROL_PERSIST_S}`,
          "-o",
          `ControlPath=${t.controlPath}`,
        ]
      : []),
    "-l",
    t.user,
    t.ip,
    "--",
    ...command,
  ];
}

/** The known_hosts line of a container: its name and IP, then its public host key ("type base64"). */
export function knownHostsLine(name: string, ip: string, publicKey: string): string {
  const [type, b64] = publicKey.trim().split(/\s+/);
  return `${name},${ip} ${type} ${b64}`;
}

/** known_hosts text with `name`'s lines replaced by `line` (or removed when line is undefined). */
export function withKnownHost(text: string, name: string, line: string | undefined): string {
  const kept = text
    .split("\n")
    .filter((l) => l.trim() !== "" && (l.split(/\s+/)[0] ?? "").split(",")[0] !== name);
  if (line !== undefined) kept.push(line);
  return kept.length ? `${kept.join("\n")}\n` : "";
}

/**
 * The turn-taking queue for the lab's known_hosts: a run's containers start concurrently and all
 * write the one file (the lab lock keeps other processes out).
 */
export const knownHostsTurn = (ctx: RunScope): Serializer => ctx.mutex("known_hosts");
