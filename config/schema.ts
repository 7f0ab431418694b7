// The config schema: the one source of the config's types. Defaults fill everything optional.
import { posix } from "node:path";
import { z } from "zod";
import { ociRefProblem } from "../src/image/oci-ref.js";
import { streamAliasProblem } from "../src/image/simplestreams.js";
import { defaultIpRange } from "./ip.js";

// What the kernel and the filesystem accept for names that become paths, interfaces or chains.
// `marks` says in words which marks the pattern allows besides letters and digits.
const safeName = (
  what: string,
  max: number,
  pattern = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/,
  marks = '"_", "." and "-"',
) =>
  z
    .string()
    .min(1)
    .max(max, `${what} must be at most ${max} characters`)
    .regex(pattern, `${what} may use only letters, digits, ${marks}, and must start with a letter or digit`)
    .refine((s) => !s.includes(".."), `${what} must not contain ".."`);

// The chains every iptables table has built in (filter, nat, mangle, raw): the lab's rules go in
// chains of its own, which jumps from these reach, and a teardown flushes and deletes its chains.
const BUILTIN_CHAINS = ["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"];

// Names the kernel and udev give network devices (loopback, Ethernet, Wi-Fi, WWAN, InfiniBand;
// the old ethN and the predictable enp0s3, ens3, eno1, enx… and wlp…): never a lab's bridge. An
// interface of any other name that exists and is not a bridge is refused by `validate` and by the
// bridge task, which look at the host.
const DEVICE_NAME = /^(lo$|(eth|wlan|wwan|em|ib)\d|(en|wl|ww|ib|sl)([opsPvabcdiu]\d|x[0-9a-f]{12}))/;

// Paths end up in the inventory (Ansible templates "{{ … }}"), in ssh options (ssh expands "%"
// tokens) and in overlayfs options: neither may appear in one. Paths are normalized ("//", "./",
// a trailing "/").
const pathText = z
  .string()
  .min(1)
  .refine((p) => !/[\0\n\r]/.test(p), "must not contain NUL or a line break")
  .refine((p) => !p.split("/").includes(".."), 'must not contain ".."')
  .refine((p) => !p.includes("{{") && !p.includes("{%"), 'must not contain "{{" or "{%" (Ansible templating)')
  .refine((p) => !p.includes("%"), 'must not contain "%" (ssh expands it)')
  .transform((p) => {
    const n = posix.normalize(p);
    return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
  });

const absPath = pathText.refine((p) => p.startsWith("/"), "must be an absolute path");

// Relative paths are allowed (resolved from the working directory), `..` and line breaks are not:
// these paths are written into the inventory, where a line break would add lines of its own.
const anyPath = pathText;

// Directories of the system itself: a lab's state (or its containers' roots) never goes there,
// where a cleanup or a purge would remove what the host needs.
const SYSTEM_DIRS = [
  "/",
  "/bin",
  "/boot",
  "/dev",
  "/etc",
  "/home",
  "/lib",
  "/lib32",
  "/lib64",
  "/media",
  "/mnt",
  "/opt",
  "/proc",
  "/root",
  "/run",
  "/sbin",
  "/srv",
  "/sys",
  "/tmp",
  "/usr",
  "/usr/bin",
  "/usr/lib",
  "/usr/local",
  "/usr/sbin",
  "/usr/share",
  "/var",
  "/var/lib",
  "/var/log",
  "/var/tmp",
];
const ownDir = absPath.refine(
  (p) => !SYSTEM_DIRS.includes(p),
  "must be a directory of its own, not a system directory such as /, /etc, /usr or /var/lib",
);

const url = z.string().refine((u) => {
  try {
    return ["http:", "https:", "file:"].includes(new URL(u).protocol);
  } catch {
    return false;
  }
}, "must be an http://, https:// or file:// URL");

const sha256 = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, "must be 64 hexadecimal digits (a SHA-256 digest)")
  .transform((s) => s.toLowerCase());

const packageName = z.string().regex(/^[a-z0-9][a-z0-9+.-]*$/, "must be a Debian package name");

export const DEFAULT_PACKAGES = [
  "systemd",
  "systemd-sysv",
  "dbus",
  // pam_systemd: a login (and a lingering user) gets its own systemd --user, so `systemctl --user`
  // and Ansible's systemd module with scope: user work, as on a Debian install (minbase leaves it out).
  "libpam-systemd",
  "openssh-server",
  "iproute2",
  "python3",
  "sudo",
];

const buildSchema = z.strictObject({
  /** Debian suite given to debootstrap. */
  suite: safeName("image.build.suite", 32).default("bookworm"),
  mirror: url.default("http://deb.debian.org/debian"),
  /** Packages installed besides debootstrap's minbase. */
  packages: z.array(packageName).default(DEFAULT_PACKAGES),
  /** The keyring the mirror's Release file is checked with (debootstrap --keyring). */
  keyring: absPath.default("/usr/share/keyrings/debian-archive-keyring.gpg"),
});

const port = z.number().int().min(1).max(65535);

const userName = z
  .string()
  .regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a valid user name (lower case, digits, _ and -, at most 32)");

// Container names become machine names, hostnames and paths.
const CONTAINER_NAME = /^[a-z][a-z0-9-]{0,39}$/;

/** An Ansible group name (also what inventory.group accepts). */
const groupName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be a valid Ansible group name")
  .refine(
    (g) => g !== "all" && g !== "ungrouped",
    'must not be "all" or "ungrouped" (Ansible\'s own groups)',
  );

// Variables Ansible sets itself: a host variable of that name would change what a play sees of
// the inventory, and the ansible_* ones how it connects (aplspawn's pinned host keys among them).
const MAGIC_VARS = [
  "hostvars",
  "groups",
  "group_names",
  "inventory_hostname",
  "inventory_hostname_short",
  "inventory_dir",
  "inventory_file",
  "playbook_dir",
  "role_path",
  "omit",
  "environment",
];

/** Why a host variable may not have this name (a Python identifier, neither ansible_* nor Ansible's own). */
function varNameProblem(k: string): string | undefined {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) return "is not a valid Ansible variable name";
  if (k.toLowerCase().startsWith("ansible_"))
    return "host variables must not start with ansible_: aplspawn sets the connection variables (and pins host keys with them)";
  if (MAGIC_VARS.includes(k)) return "is a variable Ansible sets itself";
  return undefined;
}

/** Host variables: JSON values under names varNameProblem accepts. */
const hostVars = z.record(z.string(), z.json()).superRefine((vars, ctx) => {
  for (const k of Object.keys(vars)) {
    const message = varNameProblem(k);
    if (message) ctx.addIssue({ code: "custom", path: [k], message });
  }
});

/** A string that `problem` finds nothing wrong with (what it finds is the issue's message). */
const stringWithout = (problem: (s: string) => string | undefined) =>
  z.string().superRefine((s, ctx) => {
    const message = problem(s);
    if (message) ctx.addIssue({ code: "custom", message });
  });

/** The config's image when it names none: the image `aplspawn image build` makes. */
export const DEFAULT_IMAGE_URL = "file:///var/lib/aplspawn/images/debian-bookworm.img";

/** An image section: the config's image, and a set's own (containers.sets[].image). */
const imageSchema = z.strictObject({
  url: url.default(DEFAULT_IMAGE_URL),
  /**
   * An OCI image reference (REGISTRY/NAME:TAG or …@sha256:DIGEST), pulled with skopeo and
   * flattened into the image store instead of url; image.insecure allows a plain-http registry.
   */
  oci: stringWithout(ociRefProblem).optional(),
  /**
   * An Incus image server (simplestreams, e.g. https://images.linuxcontainers.org), with
   * image.alias: its root squashfs is downloaded, verified and made the lab's layer instead of url.
   */
  server: url.optional(),
  /** The image's alias on image.server, as `incus image list images:` names it (debian/12). */
  alias: stringWithout(streamAliasProblem).optional(),
  sha256: sha256.optional(),
  checksums: url.optional(),
  /** A keyring to check the checksums' detached signature (<checksums>.gpg, as mkosi signs) with. */
  checksumsKeyring: absPath.optional(),
  /**
   * Accept a download that nothing verifies (no sha256, no checksums, or checksums fetched over
   * plain http, which anyone on the way can rewrite along with the image).
   */
  insecure: z.boolean().default(false),
  /** Bytes: a larger download is refused, also when the server does not say the size. */
  maxSize: z
    .number()
    .int()
    .positive()
    .default(16 * 1024 ** 3),
  build: buildSchema.optional(),
  /**
   * What a lab needs in the image, installed once by the image's own package manager into a cached
   * read-only layer stacked under every container (src/image/packages.ts). Unset: the manager's
   * default set when the image lacks sshd or python3, nothing when it has both; [] never.
   */
  packages: z.array(packageName).optional(),
  /** Pin the loop device (e.g. /dev/loop6); by default a free one is found. */
  loopDevice: z
    .string()
    .regex(/^\/dev\/loop[0-9]+$/, "must be a loop device such as /dev/loop6")
    .optional(),
});

/**
 * A set's own image: exactly one source, as it has no default (a set without one runs on the
 * config's image): url (a file, built or not, or a download), oci, or server with alias.
 */
const setImageSchema = imageSchema
  .extend({ url: url.optional() })
  .superRefine((s, ctx) => {
    const pulled = [s.oci !== undefined && "oci", (s.server ?? s.alias) !== undefined && "server"].filter(
      (k) => k !== false,
    );
    if (s.url === undefined && pulled.length === 0)
      ctx.addIssue({
        code: "custom",
        message:
          "names no image: give its url (a file or a download), oci (an OCI image) or server with alias (an image server's)",
      });
    else if (s.url !== undefined && pulled.length > 0)
      ctx.addIssue({
        code: "custom",
        path: ["url"],
        message: `give one image source: url, oci, or server with alias, not url and ${pulled.join(" and ")}`,
      });
  })
  // The same for editors (the JSON Schema): one of the sources, never url with another.
  .meta({
    anyOf: ["url", "oci", "server", "alias"].map((k) => ({ required: [k] })),
    not: { anyOf: ["oci", "server", "alias"].map((k) => ({ required: ["url", k] })) },
  });

// A host path bound into containers, the limits of a container (config/binds.ts checks the rest).
const bindPath = absPath.refine(
  (p) => !/[:\\]/.test(p),
  'must not contain ":" or "\\" (systemd-nspawn reads them)',
);
const binds = z.array(
  z.strictObject({ host: bindPath, container: bindPath, readOnly: z.boolean().default(true) }),
);
const size = z
  .string()
  .regex(/^[1-9][0-9]*[KMGT]?$/, 'must be a size such as "512M" or "2G" (K, M, G, T: powers of 1024)');
const limits = {
  /** Memory of the container's cgroup, in bytes with K, M, G or T (1024-based), e.g. 512M. */
  memory: size.optional(),
  /** CPUs the container may use, e.g. 1.5 (its cgroup's CPU quota). */
  cpus: z.number().min(0.01).max(1024).optional(),
};

/** One set of containers alike: named from a pattern, in the same groups, with the same vars. */
const containerSetSchema = z.strictObject({
  /** The set's name, which --only and `names` accept too. */
  name: z
    .string()
    .regex(CONTAINER_NAME, "must start with a lower-case letter and use only a-z, 0-9 and -, at most 40"),
  /** Default "<name>%d"; %d is the 1-based index within the set. */
  pattern: z
    .string()
    .regex(
      /^[a-z][a-z0-9-]*%d[a-z0-9-]*$/,
      'must start with a lower-case letter, use only a-z, 0-9 and -, and hold %d once (the index), e.g. "web%d"',
    )
    .optional(),
  count: z.number().int().min(1).max(250).default(1),
  /** Ansible groups of its containers, besides inventory.group. */
  groups: z.array(groupName).default([]),
  /** Host variables of each of its containers. */
  vars: hostVars.default({}),
  /** Default: containers.init, containers.user, containers.group. */
  init: z.enum(["boot", "script"]).optional(),
  user: userName.optional(),
  group: userName.optional(),
  /**
   * The set's own image, from one source (url, with its own build recipe if it is built; oci; or
   * server with alias), attached once as a read-only lower layer of its own; by default the
   * config's image.
   */
  image: setImageSchema.optional(),
  /** Host paths bound into its containers, besides containers.binds. */
  binds: binds.default([]),
  /** Default: containers.memory, containers.cpus. */
  ...limits,
  /** Default: containers.diskMax. */
  diskMax: size.optional(),
  /** With `cluster`: the set's containers go to the hosts of this Ansible group (default cluster.group's). */
  hosts: groupName.optional(),
});

export const configSchema = z.strictObject({
  /** The lab's name: its state lives in <workdir>/<lab>. */
  lab: safeName("lab", 32).default("default"),
  workdir: ownDir.default("/var/lib/aplspawn"),
  network: z
    .strictObject({
      /** Linux interface names are at most 15 characters. */
      bridge: safeName("network.bridge", 15)
        .refine(
          (b) => !DEVICE_NAME.test(b),
          "must not name a network device (loopback, Ethernet, Wi-Fi): give the lab a bridge of its own, e.g. nspawnd0",
        )
        .default("nspawnd0"),
      address: z
        .cidrv4("must be an IPv4 address with a prefix length, e.g. 10.10.12.1/26")
        .default("10.10.12.1/26"),
      /** iptables chain names are at most 28 characters; aplspawn's others add "-IN", "-OUT" and "-DNAT". */
      chain: safeName("network.chain", 23, /^[A-Za-z0-9][A-Za-z0-9_-]*$/, '"_" and "-"')
        .refine(
          (c) => !BUILTIN_CHAINS.includes(c),
          `must not be a built-in chain (${BUILTIN_CHAINS.join(", ")}): give the lab a chain of its own, e.g. NSPAWN`,
        )
        .default("NSPAWN"),
      nat: z.boolean().default(true),
      /**
       * The MTU of the containers' links (host0), when not the kernel's 1500: a lab across hosts
       * gets 1450 by default (a 1500 network between the hosts less the VXLAN's 50 bytes).
       */
      mtu: z.number().int().min(1280).max(65000).optional(),
      /**
       * Ports on the host the containers may reach (e.g. tcp/3142 for an apt cache); everything
       * else a container sends to the host itself is rejected.
       */
      hostPorts: z
        .array(
          z
            .string("must be tcp/PORT or udp/PORT, e.g. tcp/3142")
            .regex(/^(tcp|udp)\/[0-9]{1,5}$/, "must be tcp/PORT or udp/PORT, e.g. tcp/3142")
            .refine((s) => {
              const port = Number(s.split("/")[1]);
              return port >= 1 && port <= 65535;
            }, "the port must be 1 to 65535"),
        )
        .default([]),
      /** Let the containers reach link-local 169.254.0.0/16 (cloud metadata services); off by default. */
      allowMetadata: z.boolean().default(false),
      /**
       * Subnets allowed to open connections into the lab from the host's other networks (by
       * default, none from outside it may); another lab's bridge never counts as one.
       */
      allowFrom: z.array(z.cidrv4("must be an IPv4 subnet, e.g. 10.20.0.0/24")).default([]),
      /**
       * Private and special subnets beyond the host the containers may reach (a LAN, a docker or
       * libvirt bridge); by default only public addresses are. Never another lab's bridge.
       */
      allowTo: z.array(z.cidrv4("must be an IPv4 subnet, e.g. 192.168.1.0/24")).default([]),
      /** Ports of the host forwarded to a container's port, for traffic arriving from other networks. */
      forwards: z
        .array(
          z.strictObject({
            hostPort: port,
            container: z.string().min(1),
            port,
            proto: z.enum(["tcp", "udp"]).default("tcp"),
          }),
        )
        .default([]),
    })
    .prefault({}),
  image: imageSchema.prefault({ build: {} }),
  containers: z
    .strictObject({
      /** Default 3 (without sets); with sets, their sum. */
      count: z.number().int().min(1).max(250).optional(),
      /** Default "aplspawn": names are prefix + the IP's last octet (without sets). */
      prefix: z
        .string()
        .regex(CONTAINER_NAME, "must start with a lower-case letter and use only a-z, 0-9 and -, at most 40")
        .optional(),
      /** Sets of containers alike (instead of count and prefix). */
      sets: z.array(containerSetSchema).min(1).optional(),
      /** Default: defaultIpRange (config/ip.ts), which follows network.address. */
      ipRange: z.tuple([z.ipv4(), z.ipv4()]).optional(),
      machinesDir: ownDir.default("/var/lib/machines"),
      init: z.enum(["boot", "script"]).default("boot"),
      user: userName.default("test"),
      group: userName.default("test"),
      /** Private key; its .pub beside it. Generated in the lab dir when absent. */
      sshKey: anyPath.optional(),
      concurrency: z.number().int().min(1).max(250).default(10),
      /** Seconds to wait for a container's sshd. */
      readyTimeout: z.number().positive().max(3600).default(120),
      /**
       * Run each container in a user namespace of its own: root inside is an unprivileged id range
       * on the host (src/lab/id-ranges.ts).
       */
      privateUsers: z.boolean().default(false),
      /**
       * `lab`: drop-ins in each container's upper layer skip units a test target does not need
       * (tasks/container/boot-profile.ts); `full`: the image boots as it is. Only for `init: boot`.
       */
      boot: z.enum(["lab", "full"]).default("lab"),
      /**
       * Bytes of a container's console output kept in its log per start (beyond them it is read
       * and dropped); the log of the start before is kept as nspawn.log.1.
       */
      consoleLogMax: z
        .number()
        .int()
        .min(4096)
        .max(2 ** 40)
        .default(8 * 2 ** 20),
      /** Host paths bound into every container. */
      binds: binds.default([]),
      ...limits,
      /**
       * The size of each container's own file system, which holds its upper layer (a sparse file
       * on the host, tasks/container/disk.ts): what the container can write, and all it can take of the host's disk.
       */
      diskMax: size.default("10G"),
    })
    .prefault({}),
  inventory: z
    .strictObject({
      file: anyPath.default("inventory.txt"),
      format: z.enum(["ini", "yaml"]).default("ini"),
      /** Every container's group. */
      group: groupName.default("aplspawned"),
      /** Groups of groups: each key a group whose children are the groups listed. */
      children: z.record(groupName, z.array(groupName).min(1)).default({}),
      /** After `run up`, check the lab with `ansible -m ping` when ansible is installed. */
      ping: z.boolean().default(true),
      /**
       * Let host variables hold Ansible templating ("{{ … }}"), which Ansible evaluates on the
       * controller (a lookup('pipe', …) runs a command there); refused by default.
       */
      templates: z.boolean().default(false),
    })
    .prefault({}),
  /**
   * A playbook run against the lab at the end of `run up` (and by `run provision`): the thing
   * under test. A failure fails the command and leaves the lab up.
   */
  provision: z
    .strictObject({
      /** Relative to the working directory, as inventory.file. */
      playbook: anyPath,
      /** More arguments for ansible-playbook (-e k=v, --tags, -v …). */
      args: z.array(z.string()).default([]),
      /** Run it twice; the second run must change nothing (Molecule's idempotence check). */
      idempotence: z.boolean().default(false),
      // `aplspawn test` (Molecule's sequence): a playbook run once before converge, and one of asserts after it.
      /** Run once by `aplspawn test` before provision.playbook (Molecule's prepare). */
      prepare: anyPath.optional(),
      /** Run by `aplspawn test` after converge and idempotence: asserts (Molecule's verify). */
      verify: anyPath.optional(),
    })
    .optional(),
  /**
   * A lab across hosts: the containers spread over the hosts of an Ansible group, each running its
   * share with aplspawn there, their bridges joined into one network (config/cluster.ts).
   */
  cluster: z
    .strictObject({
      /** An Ansible inventory file, relative to the working directory as inventory.file. */
      inventory: anyPath,
      /** The group of the hosts that hold the lab. */
      group: groupName.default("aplspawn_hosts"),
      /** vxlan: one VXLAN between the hosts' bridges (unicast peers); routes: hosts on one L2. */
      overlay: z.enum(["vxlan", "routes"]).default("vxlan"),
    })
    .optional(),
});

type Parsed = z.infer<typeof configSchema>;

/** An image section (the config's image, or a set's own), defaults filled in. */
export type ImageSection = z.infer<typeof imageSchema>;

/**
 * A set of containers as the config gives it, with its defaults filled in; a pulled image's url
 * (which it does not read) is the config's default, as the config's own pulled image has it.
 */
export type ContainerSet = Omit<z.infer<typeof containerSetSchema>, "pattern" | "image"> & {
  pattern: string;
  image?: ImageSection;
};

/** A validated config with every default filled in. */
export type Config = Omit<Parsed, "containers"> & {
  containers: Omit<Parsed["containers"], "ipRange" | "count" | "prefix" | "sets"> & {
    ipRange: [string, string];
    /** How many containers the lab has (with sets, their sum). */
    count: number;
    prefix: string;
    sets?: ContainerSet[];
  };
};

/** The parsed config with the defaults that follow other keys (count, prefix, ipRange) filled in. */
export function completeConfig(p: Parsed): Config {
  const { sets: given, count: _count, prefix, ipRange: _ipRange, ...rest } = p.containers;
  const sets = given?.map(({ image, ...s }) => ({
    ...s,
    pattern: s.pattern ?? `${s.name}%d`,
    ...(image ? { image: { ...image, url: image.url ?? DEFAULT_IMAGE_URL } } : {}),
  }));
  const count = sets ? sets.reduce((n, s) => n + s.count, 0) : (p.containers.count ?? 3);
  const ipRange = p.containers.ipRange ?? defaultIpRange(p.network.address, count);
  return {
    ...p,
    containers: {
      ...rest,
      count,
      prefix: prefix ?? "aplspawn",
      ...(sets ? { sets } : {}),
      ipRange,
    },
  };
}
