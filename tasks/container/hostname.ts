// The container's own name in /etc/hostname and /etc/hosts (the image carries its build host's).
// Written through the container's confined root, so it lands in the upper layer; no rollback: the
// upper layer owns it.
import { containerRoot, rootHolds, rootWriteIfChanged } from "../../src/lab/container-files.js";
import { defineTask } from "../../src/runner/task.js";

/** Journaled parameters. */
export interface HostnameParams {
  name: string;
  ip: string;
  merged: string;
}

/** The /etc/hosts of a container. */
const hostsFile = (name: string, ip: string) =>
  `127.0.0.1\tlocalhost\n${ip}\t${name}\n\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n`;

/** Sets the container's hostname and hosts file. */
export const containerHostname = defineTask<HostnameParams, null>({
  kind: "container.hostname",
  title: (p) => `Setting hostname ${p.name} and /etc/hosts`,
  async check(ctx, p) {
    const r = await containerRoot(ctx.host, p.merged, p.name);
    return (
      (await rootHolds(r, "/etc/hostname", `${p.name}\n`)) &&
      (await rootHolds(r, "/etc/hosts", hostsFile(p.name, p.ip)))
    );
  },
  async run(ctx, p) {
    const r = await containerRoot(ctx.host, p.merged, p.name);
    await rootWriteIfChanged(r, "/etc/hostname", `${p.name}\n`, { mode: 0o644 });
    await rootWriteIfChanged(r, "/etc/hosts", hostsFile(p.name, p.ip), { mode: 0o644 });
    return null;
  },
});
