// image.packages: what a lab needs in its image (sshd, python3, sudo), installed once by the image's
// own package manager into a cached read-only layer. Here the pure part: which manager an image has
// (its /etc/os-release, hostile input), what it runs, which packages a lab gets when the config
// names none, and the key the layer is cached under. The image's files are read by the caller
// through its confined root (RootFs); nothing here touches the host.
import { createHash } from "node:crypto";

/** The package managers aplspawn knows how to drive. */
export type PackageManager = "apt" | "dnf" | "zypper" | "pacman";

/** What /etc/os-release says of the distribution: ID and ID_LIKE. */
export interface OsRelease {
  id: string;
  idLike: string[];
}

/** The most of /etc/os-release that is read (a larger file is the image's problem, not a reason to read on). */
export const OS_RELEASE_MAX = 64 * 1024;

/** Where the image says what it is (/usr/lib/os-release is the fallback the spec names). */
export const OS_RELEASE_PATHS = ["/etc/os-release", "/usr/lib/os-release"] as const;

/** Where the programs a lab needs live in an image (merged-/usr images have them under /usr). */
export const SSHD_PATHS = ["/usr/sbin/sshd", "/sbin/sshd"] as const;
export const PYTHON3_PATHS = ["/usr/bin/python3", "/bin/python3"] as const;

// The os-release spec: ID and each ID_LIKE word are lower case letters, digits, ".", "_" and "-".
const ID = /^[a-z0-9._-]{1,64}$/;

/**
 * ID and ID_LIKE of an os-release text; undefined when it names no valid ID. The text is the
 * image's: only printable ASCII values are taken, a value in quotes may be "…" or '…' (the spec's
 * shell-like quoting, without escapes, which no ID needs), and anything else is ignored.
 */
export function parseOsRelease(text: string): OsRelease | undefined {
  const vars = new Map<string, string>();
  for (const line of text.slice(0, OS_RELEASE_MAX).split("\n")) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m?.[1] || m[2] === undefined) continue;
    let v = m[2];
    const q = /^"([^"]*)"$|^'([^']*)'$/.exec(v);
    if (q) v = q[1] ?? q[2] ?? "";
    if (!/^[\x20-\x7e]*$/.test(v)) continue;
    vars.set(m[1], v);
  }
  const id = vars.get("ID");
  if (!id || !ID.test(id)) return undefined;
  const idLike = (vars.get("ID_LIKE") ?? "").split(" ").filter((w) => ID.test(w));
  return { id, idLike };
}

const MANAGER_OF: Record<string, PackageManager> = {
  debian: "apt",
  ubuntu: "apt",
  fedora: "dnf",
  rhel: "dnf",
  centos: "dnf",
  rocky: "dnf",
  almalinux: "dnf",
  suse: "zypper",
  opensuse: "zypper",
  "opensuse-leap": "zypper",
  "opensuse-tumbleweed": "zypper",
  sles: "zypper",
  arch: "pacman",
  archlinux: "pacman",
};

/** The package manager of a distribution: by its ID, else by the first ID_LIKE aplspawn knows. */
export function packageManagerOf(os: OsRelease): PackageManager | undefined {
  for (const id of [os.id, ...os.idLike]) {
    const m = MANAGER_OF[id];
    if (m) return m;
  }
  return undefined;
}

/** What a lab needs (sshd, python3 for Ansible, sudo), as each manager's packages are named. */
export const DEFAULT_LAB_PACKAGES: Record<PackageManager, readonly string[]> = {
  apt: ["openssh-server", "python3", "sudo"],
  dnf: ["openssh-server", "python3", "sudo"],
  zypper: ["openssh-server", "python3", "sudo"],
  pacman: ["openssh", "python", "sudo"],
};

/**
 * The packages the layer holds: the configured list when there is one ([]: none), else the
 * manager's default set when the image lacks sshd or python3, else none (no layer, no cost).
 */
export function packagesToInstall(
  configured: readonly string[] | undefined,
  has: { sshd: boolean; python3: boolean },
  manager: PackageManager | undefined,
): readonly string[] {
  if (configured) return configured;
  if (has.sshd && has.python3) return [];
  return manager ? DEFAULT_LAB_PACKAGES[manager] : [];
}

// Package names reach a shell line in the container: only what config/schema.ts accepts.
const PACKAGE = /^[a-z0-9][a-z0-9+.-]*$/;

/**
 * Enable sshd at boot when the install brought its unit: Debian's postinst enables ssh.service
 * itself, Fedora's and Rocky's presets do for sshd.service, openSUSE's and Arch's packages leave it
 * off. `systemctl enable` of the image's own systemd, offline (nothing boots in the install
 * container): the links land in the layer. A failure is said, not fatal: the ready check names it.
 */
const ENABLE_SSHD = `for u in sshd ssh; do for d in /usr/lib/systemd/system /lib/systemd/system; do if [ -f "$d/$u.service" ]; then systemctl enable "$u.service" || echo "aplspawn: could not enable $u.service" >&2; break 2; fi; done; done`;

/**
 * The shell line that installs `packages` with `manager` as the container's root, drops the
 * manager's download cache (it would only grow the layer) and enables sshd when it is there.
 * Non-interactive; fails on any error of the install.
 */
export function installScript(manager: PackageManager, packages: readonly string[]): string {
  const bad = packages.find((p) => !PACKAGE.test(p));
  if (bad !== undefined) throw new Error(`image.packages: ${JSON.stringify(bad)} is not a package name`);
  if (packages.length === 0) throw new Error("installScript: no packages");
  const list = [...packages].join(" ");
  return `${installLine(manager, list)}; ${ENABLE_SSHD}`;
}

function installLine(manager: PackageManager, list: string): string {
  switch (manager) {
    case "apt":
      return `set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update; apt-get install -y --no-install-recommends -- ${list}; apt-get clean; rm -rf /var/lib/apt/lists/*`;
    case "dnf":
      return `set -e; dnf -y install ${list}; dnf clean all`;
    case "zypper":
      return `set -e; zypper -n install ${list}; zypper -n clean -a`;
    case "pacman":
      return `set -e; pacman -Sy --noconfirm ${list}; pacman -Scc --noconfirm`;
  }
}

/** The layer's cache key: the image it is for, the manager and the (sorted, deduplicated) packages. */
export function layerKey(imageSha256: string, manager: PackageManager, packages: readonly string[]): string {
  const list = [...new Set(packages)].sort();
  return createHash("sha256")
    .update(`${imageSha256}\n${manager}\n${list.join("\n")}\n`)
    .digest("hex");
}

/** The layer's file in the image store (a cache shared by labs, like the images). */
export const layerPath = (store: string, key: string): string => `${store}/layers/${key}.squashfs`;

/** The error when the image's manager is unknown and packages are needed. */
export function unknownManagerMessage(os: OsRelease | undefined): string {
  const what = os
    ? `ID=${os.id}${os.idLike.length ? ` ID_LIKE="${os.idLike.join(" ")}"` : ""}`
    : "no valid os-release";
  return `image.packages: the image's package manager is unknown (${what}); aplspawn drives apt, dnf, zypper and pacman. Install sshd and python3 in the image, or set image.packages: [] to use it as it is`;
}
