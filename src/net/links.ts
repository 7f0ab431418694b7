// Reads of network interfaces (`ip -j`), shared by the bridge tasks, the netdown guard and probes.
import type { HostContext } from "../host/host.js";

/** What `ip -j -d link` says about one interface. */
export interface LinkInfo {
  name: string;
  /** linkinfo.info_kind: "bridge", "veth", … (undefined for a plain NIC). */
  kind: string | undefined;
  /** Administratively up (the UP flag; an empty bridge's operstate stays DOWN). */
  up: boolean;
  master: string | undefined;
}

interface IpLink {
  ifname: string;
  flags?: string[];
  master?: string;
  linkinfo?: { info_kind?: string };
}

function toInfo(l: IpLink): LinkInfo {
  return {
    name: l.ifname,
    kind: l.linkinfo?.info_kind,
    up: (l.flags ?? []).includes("UP"),
    master: l.master,
  };
}

/** What `ip -j <args> dev <name>` prints for the interface, or undefined when there is none of that name. */
async function ipShow<T>(ctx: HostContext, args: string[], name: string): Promise<T[] | undefined> {
  const r = await ctx.host.exec("ip", [...args, "dev", name], {
    readOnly: true,
    allowFail: true,
    signal: ctx.signal,
  });
  if (r.exitCode !== 0) {
    if (/does not exist/.test(r.stderr)) return undefined;
    throw new Error(`${r.command} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  }
  return JSON.parse(r.stdout || "[]") as T[];
}

/** The interface, or undefined when there is none of that name. */
export async function linkInfo(ctx: HostContext, name: string): Promise<LinkInfo | undefined> {
  const l = (await ipShow<IpLink>(ctx, ["-j", "-d", "link", "show"], name))?.[0];
  return l ? toInfo(l) : undefined;
}

/** The bridge, or undefined; throws when the name is taken by an interface that is not a bridge. */
export async function bridgeInfo(ctx: HostContext, name: string): Promise<LinkInfo | undefined> {
  const l = await linkInfo(ctx, name);
  if (l && l.kind !== "bridge")
    throw new Error(
      `interface ${name} exists but is ${l.kind ? `a ${l.kind}` : "not a bridge"}; choose another network.bridge`,
    );
  return l;
}

/** The interfaces enslaved to a bridge (empty when the bridge does not exist). */
async function bridgePorts(ctx: HostContext, bridge: string): Promise<LinkInfo[]> {
  if (!(await linkInfo(ctx, bridge))) return [];
  const r = await ctx.host.exec("ip", ["-j", "-d", "link", "show", "master", bridge], {
    readOnly: true,
    signal: ctx.signal,
  });
  return (JSON.parse(r.stdout || "[]") as IpLink[]).map(toInfo);
}

/**
 * Ports that belong to running containers: veth pairs (systemd-nspawn's `--network-bridge` makes
 * `vb-<machine>`). A NIC or tap that someone enslaved to a bridge they own is not a container.
 */
export async function containerPorts(ctx: HostContext, bridge: string): Promise<string[]> {
  return (await bridgePorts(ctx, bridge)).filter((p) => p.kind === "veth").map((p) => p.name);
}

/** Whether the interface carries exactly this IPv4 address and prefix. */
export async function hasAddress(ctx: HostContext, name: string, cidr: string): Promise<boolean> {
  const [local, prefix] = cidr.split("/");
  const links =
    (await ipShow<{ addr_info?: { local?: string; prefixlen?: number }[] }>(
      ctx,
      ["-j", "-4", "addr", "show"],
      name,
    )) ?? [];
  return links.some((l) =>
    (l.addr_info ?? []).some((a) => a.local === local && String(a.prefixlen) === prefix),
  );
}

/**
 * The interface group (`ip link set … group N`) every lab's bridge is put in. It is how a lab's
 * rules tell another lab's bridge from the host's other networks (`-m devgroup`), whatever that
 * bridge's name or subnet and whichever lab came up first. The value spells "APLS".
 */
export const LAB_BRIDGE_GROUP = 0x41504c53;

/** The interface's group as a number (`ip -N`: not a name from /etc/iproute2/group); undefined when there is no such interface. */
export async function linkGroup(ctx: HostContext, name: string): Promise<number | undefined> {
  const l = (await ipShow<{ group?: string }>(ctx, ["-N", "-j", "link", "show"], name))?.[0];
  return l ? Number(l.group ?? 0) : undefined;
}
