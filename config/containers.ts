// The lab's containers, derived from the config (no zod here: cheap to import).
import { imageOfSet, labImages } from "./images.js";
import { intToIp, ipToInt, parseCidr } from "./ip.js";
import type { Config } from "./schema.js";

/** A host variable's value (JSON). */
export type VarValue = string | number | boolean | null | VarValue[] | { [k: string]: VarValue };

/** One container of the lab, derived from the config. */
export interface ContainerSpec {
  name: string;
  ip: string;
  index: number;
  /** Its set's name (containers.sets); undefined in a lab of the single-set form. */
  set?: string;
  /** The id of the image it runs on (config/images.ts); undefined for the config's image. */
  image?: string;
  /** Ansible groups besides inventory.group. */
  groups: string[];
  /** Host variables. */
  vars: Record<string, VarValue>;
  init: "boot" | "script";
  user: string;
  group: string;
  /** Host paths bound into it: containers.binds, then its set's. */
  binds: Bind[];
  /** Its cgroup's limits (its set's, else containers'): memory as given ("512M"), cpus. */
  memory?: string;
  cpus?: number;
  /** The size of its own file system (its set's diskMax, else containers'), as given ("10G"). */
  diskMax: string;
}

/** A host path bound into a container. */
export interface Bind {
  host: string;
  container: string;
  readOnly: boolean;
}

/**
 * The lab's containers, IPs taken from ipRange in order (never the bridge's). Without sets, names
 * are prefix + the IP's last octet; with sets, each set's pattern with its 1-based index, set
 * after set.
 */
export function containerSpecs(c: Config): ContainerSpec[] {
  const k = c.containers;
  const limit = (memory?: string, cpus?: number) => ({
    ...(memory === undefined ? {} : { memory }),
    ...(cpus === undefined ? {} : { cpus }),
  });
  const alike = {
    init: k.init,
    user: k.user,
    group: k.group,
    binds: k.binds,
    ...limit(k.memory, k.cpus),
    diskMax: k.diskMax,
  };
  const images = k.sets ? labImages(c) : [];
  const named =
    k.sets?.flatMap((s) => {
      const image = imageOfSet(images, s.name)?.id;
      return Array.from({ length: s.count }, (_, i) => ({
        name: s.pattern.replace("%d", String(i + 1)),
        set: s.name,
        ...(image === undefined ? {} : { image }),
        groups: s.groups,
        vars: s.vars as Record<string, VarValue>,
        init: s.init ?? k.init,
        user: s.user ?? k.user,
        group: s.group ?? k.group,
        binds: [...k.binds, ...s.binds],
        ...limit(s.memory ?? k.memory, s.cpus ?? k.cpus),
        diskMax: s.diskMax ?? k.diskMax,
      }));
    }) ?? [];
  const gw = ipToInt(parseCidr(c.network.address).address);
  const out: ContainerSpec[] = [];
  for (let n = ipToInt(k.ipRange[0]); out.length < k.count; n++) {
    if (n === gw) continue;
    const ip = intToIp(n);
    const index = out.length;
    const s = named[index];
    out.push(
      s
        ? { ...s, ip, index }
        : { name: `${k.prefix}${ip.split(".")[3]}`, ip, index, groups: [], vars: {}, ...alike },
    );
  }
  return out;
}

/**
 * What every container name of the lab starts with: the prefix, or each set's pattern up to its
 * %d (for guards that look for the lab's processes and mounts by name).
 */
export const namePrefixes = (c: Config): string[] =>
  c.containers.sets
    ? [...new Set(c.containers.sets.map((s) => s.pattern.split("%d")[0] ?? ""))]
    : [c.containers.prefix];

/**
 * The containers --only names: each NAME a container or a set (all of its containers), in the
 * lab's order; the names it does not know are returned apart.
 */
export function specsNamed(
  c: Config,
  names: readonly string[],
): { specs: ContainerSpec[]; unknown: string[] } {
  const all = containerSpecs(c);
  const unknown = names.filter((n) => !all.some((s) => s.name === n || s.set === n));
  return {
    specs: all.filter((s) => names.includes(s.name) || (s.set !== undefined && names.includes(s.set))),
    unknown,
  };
}
