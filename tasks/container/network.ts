// The container's address. For `init: boot`: a systemd-networkd file for host0 named to sort
// before the image's own 80-container-host0.network (DHCP), and networkd enabled. For
// `init: script`: the original tool's way, a startup script that nspawn runs as the leader, with
// the variables it needs beside it. Both live in the upper layer (no rollback of their own).
import { type RootFs, RootFsError } from "../../src/host/host.js";
import { containerRoot, rootHolds, rootWriteIfChanged } from "../../src/lab/container-files.js";
import { defineTask } from "../../src/runner/task.js";

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
const NETWORKD_FILE = "/etc/systemd/network/10-aplspawn-host0.network";
/** The startup script of `init: script` (its path, as the container sees it). */
export const STARTUP_SCRIPT = "/root/starter/startup.sh";
const STARTUP_ENV = "/root/starter/env";

/** The networkd file for a static address on host0. */
const networkdFile = (address: string, gateway: string) =>
  `# Written by aplspawn.\n[Match]\nVirtualization=container\nName=host0\n\n[Network]\nAddress=${address}\nGateway=${gateway}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n`;

/** The variables the startup script reads. */
const startupEnv = (p: NetworkParams) =>
  `APLSPAWN_NAME=${p.name}\nAPLSPAWN_ADDRESS=${p.address}\nAPLSPAWN_GATEWAY=${p.gateway}\n`;

/** The startup script: address host0, then become sshd (which reaps children as PID 1 must). */
const startupScript = `#!/bin/sh
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

// Where the image keeps a unit. Looked up in the confined root: a directory on the way that is a
// link (/lib on a merged-/usr image) is not followed, so that place does not count.
async function unitPath(r: RootFs, unit: string): Promise<string> {
  for (const d of ["/usr/lib/systemd/system", "/lib/systemd/system"]) {
    const kind = await r.kind(`${d}/${unit}`).catch((e: unknown) => {
      if (e instanceof RootFsError) return undefined;
      throw e;
    });
    if (kind === "file") return `${d}/${unit}`;
  }
  // Not mounted (a dry run previews on an empty merged dir): Debian's path.
  if ((await r.kind("/usr")) === undefined) return `/lib/systemd/system/${unit}`;
  throw new Error(`the image has no ${unit}: install systemd (with systemd-networkd) in it`);
}

/** Configures the container's static address. */
export const containerNetwork = defineTask<NetworkParams, null>({
  kind: "container.network",
  title: (p) => `Configuring address ${p.address} (gateway ${p.gateway}) for container ${p.name}`,
  async check(ctx, p) {
    const r = await containerRoot(ctx.host, p.merged, p.name);
    if (p.init === "script")
      return (
        (await rootHolds(r, STARTUP_SCRIPT, startupScript)) &&
        (await rootHolds(r, STARTUP_ENV, startupEnv(p)))
      );
    if (!(await rootHolds(r, NETWORKD_FILE, networkdFile(p.address, p.gateway)))) return false;
    for (const [wants, unit] of NETWORKD_LINKS)
      if ((await r.readlink(`/etc/systemd/system/${wants}/${unit}`)) !== (await unitPath(r, unit)))
        return false;
    return true;
  },
  async run(ctx, p) {
    const r = await containerRoot(ctx.host, p.merged, p.name);
    if (p.init === "script") {
      await r.mkdir("/root/starter", { mode: 0o700 });
      await rootWriteIfChanged(r, STARTUP_ENV, startupEnv(p), { mode: 0o600 });
      await rootWriteIfChanged(r, STARTUP_SCRIPT, startupScript, { mode: 0o755 });
      return null;
    }
    await r.mkdir("/etc/systemd/network", { mode: 0o755 });
    await rootWriteIfChanged(r, NETWORKD_FILE, networkdFile(p.address, p.gateway), { mode: 0o644 });
    for (const [wants, unit] of NETWORKD_LINKS) {
      const dir = `/etc/systemd/system/${wants}`;
      await r.mkdir(dir, { mode: 0o755 });
      await r.symlink(await unitPath(r, unit), `${dir}/${unit}`);
    }
    return null;
  },
});
