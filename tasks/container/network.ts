// The container's address. For `init: boot`: a systemd-networkd file for host0 named to sort
// before the image's own 80-container-host0.network (DHCP), and networkd enabled. For
// `init: script`: the original tool's way, a startup script that nspawn runs as the leader, with
// the variables it needs beside it. Both live in the upper layer (no rollback of their own).
import { readOr, writeIfChanged } from "../../src/lab/files.js";
import { defineTask, type TaskContext } from "../../src/runner/task.js";

/** Journaled parameters. */
export interface NetworkParams {
  name: string;
  merged: string;
  init: "boot" | "script";
  /** The container's address with prefix, e.g. 10.10.12.10/26. */
  address: string;
  gateway: string;
}

/** Where the networkd file goes (sorts before 80-container-host0.network). */
export const NETWORKD_FILE = "etc/systemd/network/10-aplspawn-host0.network";
/** The startup script of `init: script` (its path, as the container sees it). */
export const STARTUP_SCRIPT = "/root/starter/startup.sh";
const STARTUP_ENV = "/root/starter/env";

/** The networkd file for a static address on host0. */
export const networkdFile = (address: string, gateway: string) =>
  `# Written by aplspawn.\n[Match]\nVirtualization=container\nName=host0\n\n[Network]\nAddress=${address}\nGateway=${gateway}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n`;

/** The variables the startup script reads. */
export const startupEnv = (p: NetworkParams) =>
  `APLSPAWN_NAME=${p.name}\nAPLSPAWN_ADDRESS=${p.address}\nAPLSPAWN_GATEWAY=${p.gateway}\n`;

/** The startup script: address host0, then become sshd (which reaps children as PID 1 must). */
export const startupScript = `#!/bin/sh
# Written by aplspawn: the leader of an \`init: script\` container.
set -eu
. ${STARTUP_ENV}
ip link set lo up
ip addr replace "$APLSPAWN_ADDRESS" dev host0
ip link set host0 up
ip route replace default via "$APLSPAWN_GATEWAY"
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
`;

// systemctl enable, by hand: the links `systemctl enable systemd-networkd` makes.
const NETWORKD_LINKS = [
  ["multi-user.target.wants", "systemd-networkd.service"],
  ["sockets.target.wants", "systemd-networkd.socket"],
] as const;

async function unitPath(ctx: TaskContext, p: NetworkParams, unit: string): Promise<string> {
  for (const d of ["/usr/lib/systemd/system", "/lib/systemd/system"])
    if (await ctx.host.fs.exists(`${p.merged}${d}/${unit}`)) return `${d}/${unit}`;
  // Not mounted (a dry run previews on an empty merged dir): Debian's path.
  if (!(await ctx.host.fs.exists(`${p.merged}/usr`))) return `/lib/systemd/system/${unit}`;
  throw new Error(`the image has no ${unit}: install systemd (with systemd-networkd) in it`);
}

async function linkTarget(ctx: TaskContext, path: string): Promise<string | undefined> {
  const r = await ctx.host.exec("readlink", [path], { allowFail: true, readOnly: true, signal: ctx.signal });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

/** Configures the container's static address. */
export const containerNetwork = defineTask<NetworkParams, null>({
  kind: "container.network",
  title: (p) => `Configuring address ${p.address} (gateway ${p.gateway}) for container ${p.name}`,
  async check(ctx, p) {
    const h = ctx.host;
    if (p.init === "script")
      return (
        (await readOr(h, `${p.merged}${STARTUP_SCRIPT}`)) === startupScript &&
        (await readOr(h, `${p.merged}${STARTUP_ENV}`)) === startupEnv(p)
      );
    if ((await readOr(h, `${p.merged}/${NETWORKD_FILE}`)) !== networkdFile(p.address, p.gateway))
      return false;
    for (const [wants, unit] of NETWORKD_LINKS) {
      const target = await linkTarget(ctx, `${p.merged}/etc/systemd/system/${wants}/${unit}`);
      if (!target || !(await h.fs.exists(`${p.merged}${target}`))) return false;
    }
    return true;
  },
  async run(ctx, p) {
    const h = ctx.host;
    if (p.init === "script") {
      await h.fs.mkdir(`${p.merged}/root/starter`, 0o700);
      await writeIfChanged(h, `${p.merged}${STARTUP_ENV}`, startupEnv(p), 0o600);
      await writeIfChanged(h, `${p.merged}${STARTUP_SCRIPT}`, startupScript, 0o755);
      return null;
    }
    await h.fs.mkdir(`${p.merged}/etc/systemd/network`, 0o755);
    await writeIfChanged(h, `${p.merged}/${NETWORKD_FILE}`, networkdFile(p.address, p.gateway), 0o644);
    for (const [wants, unit] of NETWORKD_LINKS) {
      const dir = `${p.merged}/etc/systemd/system/${wants}`;
      await h.fs.mkdir(dir, 0o755);
      await h.exec("ln", ["-sfn", await unitPath(ctx, p, unit), `${dir}/${unit}`], { signal: ctx.signal });
    }
    return null;
  },
});
