// The login user of a container, added by editing its account files as text (no chroot, no
// useradd from the host, which would need the image's own binaries and PAM).
import { posix } from "node:path";

/** The account files of a root tree, as text ("" when the file does not exist). */
export interface AccountFiles {
  passwd: string;
  group: string;
  shadow: string;
  gshadow: string;
}

/** What adding the user and group produced. */
export interface AccountPlan {
  files: AccountFiles;
  uid: number;
  gid: number;
  home: string;
  /** Which files changed (only those are rewritten). */
  changed: (keyof AccountFiles)[];
}

const fields = (line: string) => line.split(":");
const entries = (text: string) => text.split("\n").filter((l) => l.trim() && !l.startsWith("#"));
const named = (text: string, name: string) => entries(text).find((l) => fields(l)[0] === name);
const withLine = (text: string, line: string) =>
  `${text}${text === "" || text.endsWith("\n") ? "" : "\n"}${line}\n`;

/** The first id ≥ 1000 (below 60000, Debian's range for users) that no line of `text` uses in column `col`. */
function freeId(text: string, col: number, also: readonly number[] = []): number {
  const used = new Set([...entries(text).map((l) => Number(fields(l)[col])), ...also]);
  for (let id = 1000; id < 60000; id++) if (!used.has(id)) return id;
  throw new Error("no free id between 1000 and 59999");
}

/** Add `group` and `user` (primary group `group`, home /home/<user>, bash) where missing; idempotent. */
export function addAccount(f: AccountFiles, user: string, group: string): AccountPlan {
  const files = { ...f };
  const changed: (keyof AccountFiles)[] = [];
  let g = named(files.group, group);
  if (!g) {
    // The user's own primary gid when the user is there and that gid is free (a group lost from
    // the group file comes back as it was); else gid = uid when both are free, as useradd does.
    const own = Number(fields(named(files.passwd, user) ?? "")[3]);
    const gidFree = (id: number) => !entries(files.group).some((l) => Number(fields(l)[2]) === id);
    const gid =
      Number.isInteger(own) && own >= 1000 && gidFree(own)
        ? own
        : freeId(
            files.group,
            2,
            entries(files.passwd).map((l) => Number(fields(l)[2])),
          );
    g = `${group}:x:${gid}:`;
    files.group = withLine(files.group, g);
    changed.push("group");
    if (f.gshadow !== "" && !named(files.gshadow, group)) {
      files.gshadow = withLine(files.gshadow, `${group}:!::`);
      changed.push("gshadow");
    }
  }
  const gid = Number(fields(g)[2]);
  let p = named(files.passwd, user);
  if (!p) {
    const taken = entries(files.passwd).some((l) => Number(fields(l)[2]) === gid);
    const useUid = gid >= 1000 && !taken ? gid : freeId(files.passwd, 2);
    p = `${user}:x:${useUid}:${gid}::/home/${user}:/bin/bash`;
    files.passwd = withLine(files.passwd, p);
    changed.push("passwd");
  }
  // "*": no password can match, yet the account is not locked, so key logins work with or without PAM.
  if (!named(files.shadow, user)) {
    files.shadow = withLine(files.shadow, `${user}:*:19000:0:99999:7:::`);
    changed.push("shadow");
  }
  const pf = fields(p);
  return { files, uid: Number(pf[2]), gid: Number(pf[3]), home: pf[5] || `/home/${user}`, changed };
}

const MAX_ID = 2 ** 31 - 1;

/**
 * What is wrong with the account the plan found, if anything: the passwd and group lines come from
 * the container (its root can write anything there), and the home and ids are used by the host.
 */
export function accountProblem(plan: Pick<AccountPlan, "uid" | "gid" | "home">): string | undefined {
  for (const [what, id] of [
    ["uid", plan.uid],
    ["gid", plan.gid],
  ] as const)
    if (!Number.isInteger(id) || id < 0 || id >= MAX_ID)
      return `its ${what} is not a number from 0 to ${MAX_ID - 1}`;
  const h = plan.home;
  if (!h.startsWith("/") || h === "/")
    return `its home ${JSON.stringify(h)} is not an absolute directory below /`;
  if (posix.normalize(h) !== h || h.endsWith("/") || h.split("/").includes(".."))
    return `its home ${JSON.stringify(h)} is not a normalized path (no "..", "//" or trailing "/")`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\x00-\x1f\x7f]/.test(h)) return "its home holds control characters";
  return undefined;
}

/** The sudoers drop-in that lets the lab's group do anything without a password (Ansible's become). */
export const sudoersLine = (group: string) => `%${group} ALL=(ALL:ALL) NOPASSWD: ALL\n`;

/** The gid of a group in a group file. */
export function gidOf(groupText: string, name: string): number | undefined {
  const g = named(groupText, name);
  return g ? Number(fields(g)[2]) : undefined;
}
