// Host paths bound into containers (containers.binds, sets[].binds) and containers' limits (memory,
// cpus): what the config alone can tell of them (no zod here, no host). The host's side (the path
// exists, is no link, is root's or the owner's) is src/lab/binds.ts.
import type { Bind, ContainerSpec } from "./containers.js";
import type { KeyPath, Problem } from "./diagnostic.js";
import { imagePath } from "./paths.js";
import type { Config } from "./schema.js";

// The host's own trees: nothing in or under them is bound into a container.
const SYSTEM_TREES = [
  "/bin",
  "/boot",
  "/dev",
  "/etc",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
  "/proc",
  "/root",
  "/run",
  "/sbin",
  "/sys",
  "/usr",
];
// Directories that hold others' things: never bound whole (a directory of one's own under them is).
const SHARED_DIRS = [
  "/",
  "/home",
  "/media",
  "/mnt",
  "/opt",
  "/srv",
  "/tmp",
  "/var",
  "/var/lib",
  "/var/log",
  "/var/tmp",
];
// Where a container's own file systems are (systemd-nspawn mounts them): nothing is bound there.
const CONTAINER_API = ["/", "/proc", "/sys", "/dev", "/run/host", "/run/systemd/nspawn"];

const under = (p: string, dir: string) => p === dir || p.startsWith(dir === "/" ? "/" : `${dir}/`);

/** Why a bind (at `at`, e.g. containers.binds.0) cannot be, by the config alone. */
function bindProblems(c: Config, b: Bind, at: KeyPath): Problem[] {
  const out: Problem[] = [];
  const host = (message: string) => out.push({ at: [...at, "host"], message });
  const tree = SYSTEM_TREES.find((d) => under(b.host, d));
  const system = tree !== undefined || SHARED_DIRS.includes(b.host);
  if (system)
    host(
      `${b.host} is ${tree ? `in the system directory ${tree}` : "a system directory"}: bind a directory of its own`,
    );
  // aplspawn's own places, and what holds them: a container must not reach a lab's state or roots.
  const own = [
    c.workdir,
    "/var/lib/aplspawn",
    c.containers.machinesDir,
    imagePath(c),
    ...(c.containers.sets ?? []).flatMap((s) => (s.image ? [imagePath(c, s.image)] : [])),
  ];
  const hit = own.find((d) => under(b.host, d) || under(d, b.host));
  if (hit && !system) host(`${b.host} is or holds aplspawn's own ${hit} (a lab's state, image or roots)`);
  const api = CONTAINER_API.find((d) => (d === "/" ? b.container === "/" : under(b.container, d)));
  if (api)
    out.push({
      at: [...at, "container"],
      message: `${b.container} is where systemd-nspawn mounts the container's own ${api}`,
    });
  return out;
}

/** Every bind's problems, and a container path bound twice in one container. */
export function bindsProblems(c: Config): Problem[] {
  const k = c.containers;
  const out = k.binds.flatMap((b, i) => bindProblems(c, b, ["containers", "binds", i]));
  // at(i): the key of the list's i-th bind.
  const twice = (list: Bind[], at: (i: number) => KeyPath) => {
    for (const [i, b] of list.entries())
      if (list.findIndex((o) => o.container === b.container) !== i)
        out.push({
          at: [...at(i), "container"],
          message: `${b.container} is bound twice in the same containers`,
        });
  };
  twice(k.binds, (i) => ["containers", "binds", i]);
  for (const [i, s] of (k.sets ?? []).entries()) {
    out.push(...s.binds.flatMap((b, j) => bindProblems(c, b, ["containers", "sets", i, "binds", j])));
    twice([...k.binds, ...s.binds], (j) =>
      j < k.binds.length
        ? ["containers", "binds", j]
        : ["containers", "sets", i, "binds", j - k.binds.length],
    );
  }
  return out;
}

const UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** A memory size as the config gives it ("512M") in bytes. */
export function memoryBytes(m: string): number {
  const [, n, unit] = /^([0-9]+)([KMGT]?)$/.exec(m) ?? [];
  return Number(n) * (UNITS[unit ?? ""] ?? Number.NaN);
}

/** Memory limits below this would not let a container boot (systemd, sshd: about 20 MB). */
export const MIN_MEMORY = 32 * 1024 ** 2;

/**
 * A container's own file system smaller than this would not hold what a boot writes (ext4's journal,
 * systemd's journal, host keys).
 */
export const MIN_DISK = 64 * 1024 ** 2;

/** Limits too small to run a container. */
export function limitsProblems(c: Config): Problem[] {
  const k = c.containers;
  const at: { at: KeyPath; memory?: string | undefined; diskMax?: string | undefined }[] = [
    { at: ["containers"], memory: k.memory, diskMax: k.diskMax },
    ...(k.sets ?? []).map((s, i) => ({
      at: ["containers", "sets", i],
      memory: s.memory,
      diskMax: s.diskMax,
    })),
  ];
  return [
    ...at
      .filter((x) => x.memory !== undefined && memoryBytes(x.memory) < MIN_MEMORY)
      .map((x) => ({
        at: [...x.at, "memory"],
        message: `${x.memory} is less than 32M, too little for a container to boot`,
      })),
    ...at
      .filter((x) => x.diskMax !== undefined && memoryBytes(x.diskMax) < MIN_DISK)
      .map((x) => ({
        at: [...x.at, "diskMax"],
        message: `${x.diskMax} is less than 64M, too little for a container to boot`,
      })),
  ];
}

/** A bind in a word: "/srv/data:/data (ro)". */
export const bindText = (b: Bind) => `${b.host}:${b.container} (${b.readOnly ? "ro" : "rw"})`;

/** A container's limits in a word: "memory 512M, cpus 1.5", or "" without any. */
export const limitsText = (s: Pick<ContainerSpec, "memory" | "cpus">) =>
  [s.memory === undefined ? "" : `memory ${s.memory}`, s.cpus === undefined ? "" : `cpus ${s.cpus}`]
    .filter(Boolean)
    .join(", ");

/** Every bind of the config with its key (containers.binds.0, containers.sets.1.binds.0). */
export const configBinds = (c: Config): { at: KeyPath; bind: Bind }[] => [
  ...c.containers.binds.map((bind, i) => ({ at: ["containers", "binds", i], bind })),
  ...(c.containers.sets ?? []).flatMap((s, i) =>
    s.binds.map((bind, j) => ({ at: ["containers", "sets", i, "binds", j], bind })),
  ),
];
