// The pure half of `image build`: the debootstrap command line, what is written into the tree so
// every container boots as its own machine, and the geometry of the GPT disk image (the format
// mkosi produces: one root partition of the architecture's type GUID holding a squashfs).
import { createHash } from "node:crypto";
import { z } from "zod";
import { ARCH_NAMES, rootTypeGuid } from "./partition-table.js";

/** Bumped whenever the builder's output changes, so caches keyed by recipeKey are rebuilt. */
const BUILDER_VERSION = 1;

/** What an image is built from. */
export const recipeSchema = z.object({
  suite: z.string(),
  mirror: z.string(),
  packages: z.array(z.string()),
  /** Node's process.arch of the image (the host's: debootstrap runs the packages' scripts). */
  arch: z.string(),
  /** The keyring the mirror's Release file must be signed with (absent in old journals: Debian's). */
  keyring: z.string().optional(),
});
export type Recipe = z.infer<typeof recipeSchema>;

/** Debian's archive keyring (package debian-archive-keyring). */
export const DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";

/** A short stable key for a recipe (and the builder version), for caches. */
export function recipeKey(r: Recipe): string {
  const canon = JSON.stringify({
    v: BUILDER_VERSION,
    suite: r.suite,
    mirror: r.mirror.replace(/\/+$/, ""),
    packages: [...new Set(r.packages)].sort(),
    arch: r.arch,
  });
  return createHash("sha256").update(canon).digest("hex").slice(0, 16);
}

/** Debian's architecture names, by Node's process.arch. */
const DEBIAN_ARCH: Readonly<Record<string, string>> = {
  x64: "amd64",
  arm64: "arm64",
  ia32: "i386",
  arm: "armhf",
  riscv64: "riscv64",
  ppc64: "ppc64el",
  s390x: "s390x",
  loong64: "loong64",
};

/** debootstrap's argv for a recipe into `target`. */
export function debootstrapArgs(r: Recipe, target: string): string[] {
  const arch = DEBIAN_ARCH[r.arch];
  if (!arch) throw new Error(`no Debian architecture is known for ${r.arch}`);
  const pkgs = [...new Set(r.packages)];
  // Packages are checked against the mirror's signed Release file: never unverified.
  return [
    `--keyring=${r.keyring ?? DEBIAN_KEYRING}`,
    "--force-check-gpg",
    "--variant=minbase",
    `--arch=${arch}`,
    ...(pkgs.length ? [`--include=${pkgs.join(",")}`] : []),
    r.suite,
    target,
    r.mirror,
  ];
}

/** Placeholder hostname: each container writes its own into its upper layer. */
const IMAGE_HOSTNAME = "aplspawn";

/**
 * Files written into the tree (path relative to the root → content). debootstrap copies the build
 * host's /etc/hostname, and package scripts bake in a machine-id and SSH host keys that every
 * container would share: those are replaced so each container gets its own.
 */
export function imageFiles(): Record<string, string> {
  return {
    "etc/hostname": `${IMAGE_HOSTNAME}\n`,
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
    // Empty: systemd makes a machine-id at boot (nspawn passes the container's UUID).
    "etc/machine-id": "",
    // Host keys are removed from the image; sshd makes the missing ones on first start, unless the
    // container's upper layer already holds keys of its own.
    [SSH_HOST_KEYS_DROP_IN.path.slice(1)]: SSH_HOST_KEYS_DROP_IN.text,
  };
}

/** The image's ssh.service drop-in that makes the host keys removed from it (every missing type). */
export const SSH_HOST_KEYS_DROP_IN = {
  path: "/etc/systemd/system/ssh.service.d/10-aplspawn-host-keys.conf",
  text: "[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n",
} as const;

/** Files removed from the tree (relative paths; a trailing "/*" empties a directory of its files). */
export const IMAGE_REMOVALS = [
  "etc/ssh/ssh_host_*",
  "var/lib/dbus/machine-id",
  "var/cache/apt/archives/*.deb",
  "var/cache/apt/*.bin",
];

/** A tiny glob for IMAGE_REMOVALS: does `name` match the last path component pattern? */
export function matchesPattern(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*")}$`);
  return re.test(name);
}

const MIB = 1024 * 1024;
const SECTOR = 512;

/** Where things go in the disk image. */
export interface DiskGeometry {
  /** Total image size in bytes. */
  size: number;
  /** Root partition start and size in bytes (1 MiB aligned). */
  partitionOffset: number;
  partitionSize: number;
}

/** Geometry for a filesystem of `fsBytes`: 1 MiB before the partition (GPT), 1 MiB after (backup GPT). */
export function diskGeometry(fsBytes: number): DiskGeometry {
  const partitionSize = Math.max(MIB, Math.ceil(fsBytes / MIB) * MIB);
  return { size: MIB + partitionSize + MIB, partitionOffset: MIB, partitionSize };
}

/** The sfdisk script that writes the GPT: one root partition for the architecture. */
export function sfdiskScript(g: DiskGeometry, arch: string): string {
  const name = `root-${ARCH_NAMES[arch] ?? arch}`;
  return [
    "label: gpt",
    `start=${g.partitionOffset / SECTOR}, size=${g.partitionSize / SECTOR}, type=${rootTypeGuid(arch)}, name="${name}"`,
    "",
  ].join("\n");
}

/** Free space a build needs next to its target: the tree, the squashfs and the image. */
export const BUILD_SPACE_NEEDED = 2 * 1024 * MIB;
