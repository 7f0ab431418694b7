// The container's own name in /etc/hostname and /etc/hosts (the image carries its build host's).
// Written through the merged root, so it lands in the upper layer; no rollback: the upper layer
// owns it.
import { readOr, writeIfChanged } from "../../src/lab/files.js";
import { defineTask } from "../../src/runner/task.js";

/** Journaled parameters. */
export interface HostnameParams {
  name: string;
  ip: string;
  merged: string;
}

/** The /etc/hosts of a container. */
export const hostsFile = (name: string, ip: string) =>
  `127.0.0.1\tlocalhost\n${ip}\t${name}\n\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n`;

/** Sets the container's hostname and hosts file. */
export const containerHostname = defineTask<HostnameParams, null>({
  kind: "container.hostname",
  title: (p) => `Setting hostname ${p.name} and /etc/hosts`,
  async check(ctx, p) {
    return (
      (await readOr(ctx.host, `${p.merged}/etc/hostname`)) === `${p.name}\n` &&
      (await readOr(ctx.host, `${p.merged}/etc/hosts`)) === hostsFile(p.name, p.ip)
    );
  },
  async run(ctx, p) {
    await writeIfChanged(ctx.host, `${p.merged}/etc/hostname`, `${p.name}\n`, 0o644);
    await writeIfChanged(ctx.host, `${p.merged}/etc/hosts`, hostsFile(p.name, p.ip), 0o644);
    return null;
  },
});
