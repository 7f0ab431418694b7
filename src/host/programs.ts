// The programs aplspawn runs on the host, one line each: the Debian package that has it, and what
// needs it. Every list of required programs is derived from here (a lab's preflight, image build,
// an OCI pull), and so is the apt-get line that installs what is missing. scripts/install.sh
// installs every package named here (test/cli/programs.test.ts checks).
import type { Host } from "./host.js";

/**
 * What needs a program: every lab (`run up`, `run spawn`: checked by host.preflight before anything
 * changes), a lab with containers.privateUsers, an image build, one from a mirror (not --rootfs),
 * an OCI pull (image.oci), an Incus image (image.server).
 */
export type Need = "lab" | "privateUsers" | "imageBuild" | "mirror" | "oci" | "server";

const PROGRAMS: Record<string, { package: string; for: readonly Need[] }> = {
  "systemd-nspawn": { package: "systemd-container", for: ["lab"] },
  ip: { package: "iproute2", for: ["lab"] },
  // A container's address, set in its network namespace (tasks/container/address.ts).
  nsenter: { package: "util-linux", for: ["lab"] },
  iptables: { package: "iptables", for: ["lab"] },
  // A new chain and its rules in one batch (tasks/net/iptables-chain.ts).
  "iptables-restore": { package: "iptables", for: ["lab"] },
  losetup: { package: "mount", for: ["lab"] },
  mount: { package: "mount", for: ["lab"] },
  umount: { package: "mount", for: ["lab"] },
  ssh: { package: "openssh-client", for: ["lab"] },
  "ssh-keygen": { package: "openssh-client", for: ["lab"] },
  // The relay that bounds a container's console log (src/host/exec.ts).
  perl: { package: "perl-base", for: ["lab"] },
  // Each container's own file system (tasks/container/disk.ts).
  "mkfs.ext4": { package: "e2fsprogs", for: ["lab"] },
  // idmapped mounts (src/lab/idmap-mount.ts).
  python3: { package: "python3", for: ["privateUsers"] },
  debootstrap: { package: "debootstrap", for: ["mirror"] },
  gpgv: { package: "gpgv", for: ["imageBuild"] },
  mksquashfs: { package: "squashfs-tools", for: ["imageBuild", "oci", "server"] },
  unsquashfs: { package: "squashfs-tools", for: ["server"] },
  sfdisk: { package: "fdisk", for: ["imageBuild"] },
  dd: { package: "coreutils", for: ["imageBuild"] },
  truncate: { package: "coreutils", for: ["imageBuild"] },
  skopeo: { package: "skopeo", for: ["oci"] },
  umoci: { package: "umoci", for: ["oci"] },
};

/** The programs any of `needs` runs, in the table's order. */
export const programsFor = (...needs: Need[]): string[] =>
  Object.entries(PROGRAMS)
    .filter(([, p]) => p.for.some((n) => needs.includes(n)))
    .map(([name]) => name);

/** Every package the table names, each once. */
export const allPackages = (): string[] => [...new Set(Object.values(PROGRAMS).map((p) => p.package))];

/**
 * Which of `programs` are not on PATH, and the line that installs them ("missing programs: …;
 * install them with: apt-get install …"); undefined when none is missing.
 */
export async function missingPrograms(host: Host, programs: readonly string[]): Promise<string | undefined> {
  const missing: string[] = [];
  for (const p of programs) if (!(await host.which(p))) missing.push(p);
  if (missing.length === 0) return undefined;
  const pkgs = [...new Set(missing.map((m) => PROGRAMS[m]?.package ?? m))];
  return `missing programs: ${missing.join(", ")}; install them with: apt-get install ${pkgs.join(" ")}`;
}
