// Step builders shared by up and spawn (preflight, the lab key, one group per container, the
// inventory) and the journal selections shared by down, stop, cleanup and up. Only composition.
import { resolve } from "node:path";
import { memoryBytes } from "../config/binds.js";
import { type ContainerSpec, containerSpecs, specsNamed } from "../config/containers.js";
import { imageFileOf, labImages } from "../config/images.js";
import { parseCidr } from "../config/ip.js";
import {
  consoleLogPath,
  containerDir,
  diskPaths,
  keptLogsDir,
  knownHostsPath,
  labDir,
  layersDir,
  lowerDir,
  mergedDir,
  ownerFiles,
  packagesLayerDir,
  snapshotsDir,
  sshKeyPath,
} from "../config/paths.js";
import type { Config } from "../config/schema.js";
import { UsageError } from "../src/errors.js";
import { programsFor } from "../src/host/programs.js";
import { EMPTY_ANSIBLE_CFG } from "../src/lab/ansible-config.js";
import { entryFamily, entryKept, entryScope } from "../src/lab/entries.js";
import { labHolder } from "../src/lab/holds.js";
import type { Owner } from "../src/lab/owner.js";
import { group, type JournalRef, type Step, type TaskStep, task } from "../src/runner/task.js";
import { containerAddress } from "../tasks/container/address.js";
import { labAnsiblePing } from "../tasks/container/ansible-ping.js";
import { containerBootProfile } from "../tasks/container/boot-profile.js";
import { labContainersClaim } from "../tasks/container/claim.js";
import { containerDirs } from "../tasks/container/dirs.js";
import { containerDisk } from "../tasks/container/disk.js";
import { containerDiskLoop } from "../tasks/container/disk-loop.js";
import { containerDiskMount } from "../tasks/container/disk-mount.js";
import { containerHostKeys } from "../tasks/container/hostkeys.js";
import { containerHostname } from "../tasks/container/hostname.js";
import { KEPT_KINDS } from "../tasks/container/index.js";
import { labInventory } from "../tasks/container/inventory.js";
import { labInventoryGone } from "../tasks/container/inventory-gone.js";
import { containerLayers } from "../tasks/container/layers.js";
import { labLogsGone } from "../tasks/container/logs-gone.js";
import { containerLowerView } from "../tasks/container/lower.js";
import { containerNetwork } from "../tasks/container/network.js";
import { containerNspawn } from "../tasks/container/nspawn.js";
import { containerOverlay } from "../tasks/container/overlay.js";
import { labOwnerFiles } from "../tasks/container/owner-files.js";
import { containerReady } from "../tasks/container/ready.js";
import { containerShare, labShare } from "../tasks/container/share.js";
import { labSshKey } from "../tasks/container/sshkey.js";
import { containerUpper } from "../tasks/container/upper.js";
import { containerUser } from "../tasks/container/user.js";
import { hostCapacity } from "../tasks/host/capacity.js";
import { hostInotify, inotifyFor } from "../tasks/host/inotify.js";
import { hostPreflight } from "../tasks/host/preflight.js";
import { inventorySpec } from "./lab-params.js";
import type { WorkflowOptions } from "./types.js";

/** Preflight, whether the host can hold the lab, then the inotify limit for the lab's containers. */
export const preflightSteps = (c: Config, o: { bridgeMustExist: boolean }): Step[] => [
  task(hostPreflight, "host.preflight", {
    programs: programsFor("lab", ...(c.containers.privateUsers ? (["privateUsers"] as const) : [])),
    machinesDir: c.containers.machinesDir,
    subnet: { address: c.network.address, bridge: c.network.bridge },
    ...(o.bridgeMustExist ? { bridge: c.network.bridge } : {}),
  }),
  task(hostCapacity, "host.capacity", {
    names: containerSpecs(c).map((s) => s.name),
    lowers: labImages(c).map((i) => i.lower),
    inotify: inotifyFor(c.containers.count),
  }),
  task(hostInotify, "host.inotify", { ...inotifyFor(c.containers.count), holder: labHolder(labDir(c)) }),
];

/** The lab's SSH key. */
export const sshKeyStep = (c: Config, reader?: Owner): Step =>
  task(labSshKey, "lab.sshkey", {
    path: sshKeyPath(c),
    comment: `aplspawn@${c.lab}`,
    ...(c.containers.sshKey !== undefined ? { from: resolve(c.containers.sshKey) } : {}),
    ...(c.containers.sshKey !== undefined && reader ? { reader } : {}),
  });

/**
 * The containers the options select (all by default): --only names containers or sets (all of a
 * set's containers); an unknown name is a usage error.
 */
export function selectedSpecs(c: Config, o: WorkflowOptions): ContainerSpec[] {
  if (!o.only) return containerSpecs(c);
  const { specs, unknown } = specsNamed(c, o.only);
  if (unknown.length > 0) {
    const sets = c.containers.sets ? `; sets: ${c.containers.sets.map((s) => s.name).join(", ")}` : "";
    throw new UsageError(
      `--only: no container${sets ? " or set" : ""} named ${unknown.join(", ")} in this lab; containers: ${containerSpecs(
        c,
      )
        .map((s) => s.name)
        .join(", ")}${sets}`,
    );
  }
  return specs;
}

/** The tasks of one container, in order; each journals the container's name as its scope. */
function containerSteps(c: Config, s: ContainerSpec, owner?: number): TaskStep[] {
  return containerTasksOf(c, s, owner).map((t) => ({ ...t, scope: s.name }));
}

/** owner: the uid of the lab's owner, whose host paths may be bound too. */
function containerTasksOf(c: Config, s: ContainerSpec, owner?: number): TaskStep[] {
  const n = s.name;
  const dir = containerDir(c, n);
  const merged = mergedDir(c, n);
  const net = parseCidr(c.network.address);
  const logFile = consoleLogPath(c, n);
  const disk = diskPaths(c, n);
  const upper = disk.upper;
  const knownHosts = knownHostsPath(c);
  const init = s.init;
  const privateUsers = c.containers.privateUsers;
  const view = `${dir}/lower`;
  const lower = lowerDir(c, s.image);
  return [
    task(containerDirs, `container.dirs[${n}]`, {
      name: n,
      dir,
      merged,
      logFile,
      keptLogs: keptLogsDir(c),
    }),
    // Its overlay's copies in containers started after it go with it (tasks/container/share.ts).
    task(containerShare, `container.share[${n}]`, { name: n, dir: merged }),
    // Its own file system, which bounds what it can write (and take of the host's disk).
    task(containerDisk, `container.disk[${n}]`, { name: n, file: disk.file, bytes: memoryBytes(s.diskMax) }),
    task(containerDiskLoop, `container.disk-loop[${n}]`, { name: n, file: disk.file }),
    task(containerDiskMount, `container.disk-mount[${n}]`, { name: n, file: disk.file, mount: disk.mount }),
    task(containerUpper, `container.upper[${n}]`, {
      name: n,
      dir,
      upper,
      work: disk.work,
      disk: { file: disk.file, mount: disk.mount },
      privateUsers,
    }),
    // In a user namespace, the container sees the image root through its own idmapped view.
    ...(privateUsers
      ? [
          task(containerLowerView, `container.lower[${n}]`, {
            name: n,
            lower,
            target: view,
            upper,
          }),
        ]
      : []),
    task(containerOverlay, `container.overlay[${n}]`, {
      name: n,
      lower: privateUsers ? view : lower,
      upper,
      work: disk.work,
      merged,
      layers: layersDir(c, n),
      ...(privateUsers ? {} : { packages: packagesLayerDir(c, s.image) }),
    }),
    task(containerHostKeys, `container.hostkeys[${n}]`, { name: n, ip: s.ip, dir, merged, knownHosts }),
    task(containerHostname, `container.hostname[${n}]`, { name: n, ip: s.ip, merged }),
    task(containerUser, `container.user[${n}]`, {
      name: n,
      merged,
      user: s.user,
      group: s.group,
      publicKey: `${sshKeyPath(c)}.pub`,
    }),
    task(containerNetwork, `container.network[${n}]`, {
      name: n,
      merged,
      init,
      address: `${s.ip}/${net.prefix}`,
      gateway: net.address,
    }),
    ...(init === "boot"
      ? [
          task(containerBootProfile, `container.boot-profile[${n}]`, {
            name: n,
            merged,
            boot: c.containers.boot,
          }),
        ]
      : []),
    task(containerNspawn, `container.nspawn[${n}]`, {
      name: n,
      merged,
      logFile,
      bridge: c.network.bridge,
      init,
      stopTimeoutMs: 30_000,
      startTimeoutMs: c.containers.readyTimeout * 1000,
      logMaxBytes: c.containers.consoleLogMax,
      ...(s.binds.length ? { binds: s.binds, bindOwners: [0, ...(owner === undefined ? [] : [owner])] } : {}),
      ...(s.memory !== undefined || s.cpus !== undefined
        ? {
            limits: {
              ...(s.memory === undefined ? {} : { memory: memoryBytes(s.memory) }),
              ...(s.cpus === undefined ? {} : { cpus: s.cpus }),
            },
          }
        : {}),
    }),
    // Its address, from the host side, in its network namespace (whatever manager the image runs).
    task(containerAddress, `container.address[${n}]`, {
      name: n,
      merged,
      address: `${s.ip}/${net.prefix}`,
      gateway: net.address,
      ...(c.network.mtu === undefined ? {} : { mtu: c.network.mtu }),
    }),
    task(containerReady, `container.ready[${n}]`, {
      name: n,
      merged,
      logFile,
      ip: s.ip,
      user: s.user,
      key: sshKeyPath(c),
      knownHosts,
      timeoutMs: c.containers.readyTimeout * 1000,
    }),
  ];
}

/** The lab's directory a shared mount, before any of its mounts are made in it (tasks/container/share.ts). */
export const labShareStep = (c: Config): Step => task(labShare, "lab.share", { dir: labDir(c) });

/** The lab's claim on its container names, before any container is made. */
export const containersClaimStep = (c: Config): Step =>
  task(labContainersClaim, "lab.claim", {
    lab: c.lab,
    labDir: labDir(c),
    names: containerSpecs(c).map((s) => s.name),
  });

/** One group per container, started concurrently (bounded by --concurrency or containers.concurrency). */
export function containersGroup(c: Config, specs: ContainerSpec[], o: WorkflowOptions): Step {
  const prefix = parseCidr(c.network.address).prefix;
  return group(
    "containers",
    `Starting ${specs.length} container${specs.length === 1 ? "" : "s"}`,
    // On a terminal a container that is up is one line, and the title counts them: 50 fit.
    specs.map((s) =>
      group(
        `container[${s.name}]`,
        `Container ${s.name}, ip ${s.ip}/${prefix}`,
        containerSteps(c, s, o.owner?.uid),
        1,
        {
          collapse: true,
        },
      ),
    ),
    o.concurrency ?? c.containers.concurrency,
    { tally: "ready" },
  );
}

/** Where the inventory goes: a relative inventory.file is relative to the current directory. */
const inventoryPath = (c: Config) => resolve(c.inventory.file);

/** The owner's copies of the lab key and known_hosts (config/paths.ts ownerFiles), made or refreshed. */
export function ownerFilesStep(c: Config, owner: Owner): Step {
  const f = ownerFiles(c, owner.home);
  return task(labOwnerFiles, "lab.owner-files", {
    owner,
    dir: f.dir,
    controlPathDir: f.controlPathDir,
    copies: [
      { from: sshKeyPath(c), to: f.key, mode: 0o600 },
      { from: `${sshKeyPath(c)}.pub`, to: `${f.key}.pub`, mode: 0o644 },
      { from: knownHostsPath(c), to: f.knownHosts, mode: 0o644 },
      // What Ansible reads instead of an ansible.cfg it must not trust (src/lab/ansible-config.ts).
      { text: EMPTY_ANSIBLE_CFG, to: f.emptyAnsibleCfg, mode: 0o644 },
    ],
  });
}

/**
 * The inventory, then (when enabled and ansible is installed) an ansible ping of the lab. With an
 * owner, first their copies of the key and known_hosts; the inventory is theirs and names those,
 * and Ansible runs as them. Without one, the inventory is root's, and Ansible runs as the
 * unprivileged ansibleUser, with copies and an inventory of its own (never as root).
 */
export function inventorySteps(c: Config, owner?: Owner, ansibleUser?: Owner): Step[] {
  const ping = { group: c.inventory.group, enabled: c.inventory.ping };
  // The inventories and copies, one line once written; the ping's result stays in view.
  const written = (steps: Step[]) =>
    group("lab.inventories", `Writing the inventory ${inventoryPath(c)}`, steps, 1, { collapse: true });
  if (owner)
    return [
      written(ownInventorySteps(c, owner, inventoryPath(c))),
      task(labAnsiblePing, "lab.ansible-ping", {
        ...ping,
        inventory: inventoryPath(c),
        owner,
        emptyConfig: ownerFiles(c, owner.home).emptyAnsibleCfg,
      }),
    ];
  const rootInventory = task(labInventory, "lab.inventory", { path: inventoryPath(c), ...inventorySpec(c) });
  if (!ansibleUser)
    return [
      rootInventory,
      task(labAnsiblePing, "lab.ansible-ping", { ...ping, inventory: inventoryPath(c) }),
    ];
  return [
    written([
      rootInventory,
      ...ownInventorySteps(c, ansibleUser, ansibleInventory(c, ansibleUser), "lab.ansible-inventory"),
    ]),
    task(labAnsiblePing, "lab.ansible-ping", {
      ...ping,
      inventory: ansibleInventory(c, ansibleUser),
      owner: ansibleUser,
      emptyConfig: ownerFiles(c, ansibleUser.home).emptyAnsibleCfg,
    }),
  ];
}

/** The inventory Ansible runs with as the account of a lab without owner: in that account's copies. */
export const ansibleInventory = (c: Config, a: Owner) => `${ownerFiles(c, a.home).dir}/inventory`;

/** A user's copies of the key and known_hosts, and an inventory of theirs naming them. */
function ownInventorySteps(c: Config, o: Owner, path: string, id = "lab.inventory"): Step[] {
  const f = ownerFiles(c, o.home);
  return [
    ownerFilesStep(c, o),
    task(labInventory, id, {
      path,
      ...inventorySpec(c),
      key: f.key,
      knownHosts: f.knownHosts,
      controlPathDir: f.controlPathDir,
      owner: o,
    }),
  ];
}

/** A container's entry that `stop` undoes: one left means the container (partly) runs. */
const running = (e: JournalRef) => entryScope(e) !== undefined && !entryKept(e, KEPT_KINDS);

/**
 * Each container's read-only layers linked from the snapshot (before its container steps, which
 * stack them under its upper layer): restore's, and `run up`'s for `aplspawn test --reuse-prepare`.
 */
export const snapshotLayersSteps = (c: Config, specs: ContainerSpec[], snapshot: string): Step[] =>
  specs.map((s) =>
    task(
      containerLayers,
      `container.layers[${s.name}]`,
      {
        name: s.name,
        ...(s.set === undefined ? {} : { set: s.set }),
        dir: containerDir(c, s.name),
        layers: layersDir(c, s.name),
        snapshot,
        from: `${snapshotsDir(c)}/${snapshot}/${s.name}`,
        image: imageFileOf(c, s.set),
      },
      s.name,
    ),
  );

/**
 * The lab's inventory and ssh masters that no journal entry records (`aplspawn inventory`, then
 * `status` or ansible): removed by cleanup and down.
 */
export const inventoryGoneStep = (c: Config): Step =>
  task(labInventoryGone, "lab.inventory-gone", {
    path: inventoryPath(c),
    controlPathDir: inventorySpec(c).controlPathDir,
  });

/** The logs failed runs kept (no journal entry records them): removed by cleanup and down --purge. */
export const logsGoneStep = (c: Config): Step => task(labLogsGone, "lab.logs-gone", { dir: keptLogsDir(c) });

/** Journal selections: which entries a workflow undoes. */
export const entries = {
  /** One lane per container: containers are undone concurrently, each one's entries newest first. */
  lanes: (c: Config, o: WorkflowOptions) => ({
    lane: (e: JournalRef) => entryScope(e),
    concurrency: o.concurrency ?? c.containers.concurrency,
  }),
  /**
   * A container's file system attached and mounted: undone with the rest of a container, but not by
   * a snapshot's stop (its upper layer is copied from there, or replaced under it).
   */
  disk: (e: JournalRef) => e.kind === containerDiskLoop.kind || e.kind === containerDiskMount.kind,
  /** Entries whose resources `run down` keeps unless --purge (the lab's lasting state). */
  kept: (e: JournalRef) => entryKept(e, KEPT_KINDS),
  /** Entries of one family ("net", "image", …). */
  family: (e: JournalRef, family: string) => entryFamily(e) === family,
  /** A container's entries (by name when names are given). */
  container: (e: JournalRef, names?: readonly string[]) => {
    const n = entryScope(e);
    return n !== undefined && (names === undefined || names.includes(n));
  },
  /**
   * What the lab holds for its running containers (its hold on the inotify limit, its claim on
   * their names), once no container of the lab is left running in `journal` (kept when the journal
   * is not given: nothing is then known of the containers).
   */
  containersHolds: (e: JournalRef, journal?: readonly JournalRef[]) =>
    (e.kind === hostInotify.kind || e.kind === labContainersClaim.kind) &&
    journal !== undefined &&
    !journal.some(running),
  /** What of the lab is neither its network (netdown's) nor its image (stop's, and the cache). */
  lab: (e: JournalRef) => !["net", "image"].includes(entryFamily(e)),
};

/** The lab's directory, for tasks that guard it. */
export const labPaths = (c: Config) => ({ labDir: labDir(c), machinesDir: c.containers.machinesDir });
