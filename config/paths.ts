// Where a lab keeps things on the host, derived from the config in one place.
import { createHash } from "node:crypto";
import { basename, resolve } from "node:path";
import { ociImageFile } from "../src/image/oci-ref.js";
import { streamImageFile } from "../src/image/simplestreams.js";
import type { Config, ImageSection } from "./schema.js";

/** The lab's state directory (journal, lock, keys, known_hosts, container layers). */
export const labDir = (c: Config) => `${c.workdir}/${c.lab}`;
/** Downloaded and built images (a cache shared by labs). */
export const imageStore = (c: Config) => `${c.workdir}/images`;
/**
 * An image's file (the config's image by default, or a set's own): a file:// URL is used where it
 * is; a download, an OCI image's flattened root (image.oci) and an image server's (image.server)
 * land in the image store.
 */
export function imagePath(c: Config, image: ImageSection = c.image): string {
  if (image.oci) return `${imageStore(c)}/${ociImageFile(image.oci)}`;
  if (image.server) return `${imageStore(c)}/${streamImageFile(image.server, image.alias ?? "")}`;
  const u = new URL(image.url);
  return u.protocol === "file:"
    ? decodeURIComponent(u.pathname)
    : `${imageStore(c)}/${basename(decodeURIComponent(u.pathname)) || "image.img"}`;
}
/**
 * Where an image's root is mounted read-only: the lower layer its containers share. The config's
 * image (id undefined) at "lower", a set's own image at "lower-<id>" (config/images.ts).
 */
export const lowerDir = (c: Config, id?: string) => `${labDir(c)}/lower${id === undefined ? "" : `-${id}`}`;
/**
 * Where an image's packages layer (image.packages) is mounted read-only, when the image needs one:
 * beside its lower directory, named like it.
 */
export const packagesLayerDir = (c: Config, id?: string) =>
  `${labDir(c)}/packages${id === undefined ? "" : `-${id}`}`;
/**
 * The playbook `run up` and `run provision` run, and `validate` checks: provision.playbook, relative
 * to the working directory (as inventory.file is).
 */
export const playbookFile = (provision: { playbook: string }) => resolve(provision.playbook);
/** A container's own directory: upper and work layers, host keys, log. */
export const containerDir = (c: Config, name: string) => `${labDir(c)}/containers/${name}`;
/**
 * A container's own file system (tasks/container/disk.ts): the sparse file that holds it, and where
 * it is mounted; the container's upper and work layers are in it.
 */
export const diskPaths = (c: Config, name: string) => {
  const mount = `${containerDir(c, name)}/disk`;
  return { file: `${containerDir(c, name)}/disk.img`, mount, upper: `${mount}/upper`, work: `${mount}/work` };
};
/** The lab's snapshots (`aplspawn snapshot`), one directory each, root's alone. */
export const snapshotsDir = (c: Config) => `${labDir(c)}/snapshots`;
/** The read-only layers a restored snapshot stacks under a container's upper layer. */
export const layersDir = (c: Config, name: string) => `${containerDir(c, name)}/layers`;
/** A container's console log: what its systemd-nspawn (and the container's console) prints. */
export const consoleLogPath = (c: Config, name: string) => `${containerDir(c, name)}/nspawn.log`;
/** The console logs a failed run kept of the containers it rolled back, one directory per run. */
export const keptLogsDir = (c: Config) => `${labDir(c)}/logs`;
/** A container's merged root, where systemd-nspawn runs it. */
export const mergedDir = (c: Config, name: string) => `${c.containers.machinesDir}/${name}`;
/**
 * The private key used to reach containers (its .pub beside it): the lab's own, root's alone. A
 * key the config names (containers.sshKey) is copied here, read as the user the lab is for.
 */
export const sshKeyPath = (c: Config) => `${labDir(c)}/id_ed25519`;
/** The lab's known_hosts, holding every container's pinned host keys. */
export const knownHostsPath = (c: Config) => `${labDir(c)}/known_hosts`;

/**
 * What the user who ran the lab through sudo (its owner) gets in their home, to use the lab
 * without root: copies of the lab key and known_hosts, and a directory for Ansible's ssh masters.
 * Named by the lab directory; short, since a socket path in it holds at most 107 bytes.
 */
export function ownerFiles(c: Config, home: string) {
  const dir = `${home}/.local/state/aplspawn/lab-${createHash("sha256").update(labDir(c)).digest("hex").slice(0, 12)}`;
  return {
    dir,
    key: `${dir}/id_ed25519`,
    knownHosts: `${dir}/known_hosts`,
    controlPathDir: `${dir}/cp`,
    emptyAnsibleCfg: `${dir}/ansible.cfg`,
  };
}
