// What keeps the image's own network manager from undoing the container's address, which
// container.address (tasks/container/address.ts) sets from the host side once it runs. For
// `init: boot`: a systemd-networkd file for host0 named to sort before the image's own
// 80-container-host0.network (DHCP), so an image that enables networkd configures host0 the same
// static way (networkd itself is not enabled: an image runs whatever manager it has, or none); and
// a NetworkManager drop-in that leaves host0 unmanaged (else NetworkManager's automatic DHCP
// connection would flush the address). ifupdown touches only interfaces /etc/network/interfaces
// names (`ifup -a`: the `auto` ones), never host0. For `init: script`: the original tool's way, a
// startup script that nspawn runs as the leader (it starts sshd), with the variables it needs beside
// it. All live in the upper layer (no rollback of their own).
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
/** NetworkManager's drop-in: host0 is not NetworkManager's to manage. */
const NM_FILE = "/etc/NetworkManager/conf.d/10-aplspawn-host0.conf";
const NM_TEXT =
  "# Written by aplspawn: host0's address is set from the host.\n[keyfile]\nunmanaged-devices=interface-name:host0\n";

/** The networkd file for a static address on host0. */
const networkdFile = (address: string, gateway: string) =>
  `# Written by aplspawn.\n[Match]\nVirtualization=container\nName=host0\n\n[Network]\nAddress=${address}\nGateway=${gateway}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n`;

/** The variables the startup script reads. */
const startupEnv = (p: NetworkParams) =>
  `APLSPAWN_NAME=${p.name}\nAPLSPAWN_ADDRESS=${p.address}\nAPLSPAWN_GATEWAY=${p.gateway}\n`;

/**
 * The startup script: become sshd (which reaps children as PID 1 must). The address is set from the
 * host (container.address), so the image needs no `ip`.
 */
const startupScript = `#!/bin/sh
# Written by aplspawn: the leader of an \`init: script\` container.
set -eu
. ${STARTUP_ENV}
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
`;

/** Writes what keeps the image's network manager off the container's address. */
export const containerNetwork = defineTask<NetworkParams, null>({
  kind: "container.network",
  title: (p) => `Keeping the network manager of container ${p.name} off its address ${p.address}`,
  async check(ctx, p) {
    const r = await containerRoot(ctx.host, p.merged, p.name);
    if (p.init === "script")
      return (
        (await rootHolds(r, STARTUP_SCRIPT, startupScript)) &&
        (await rootHolds(r, STARTUP_ENV, startupEnv(p)))
      );
    return (
      (await rootHolds(r, NETWORKD_FILE, networkdFile(p.address, p.gateway))) &&
      (await rootHolds(r, NM_FILE, NM_TEXT))
    );
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
    await r.mkdir("/etc/NetworkManager/conf.d", { mode: 0o755 });
    await rootWriteIfChanged(r, NM_FILE, NM_TEXT, { mode: 0o644 });
    return null;
  },
});
