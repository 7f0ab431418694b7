// The host's side of a bind (config/binds.ts has the config's): the host path exists, is a
// directory or a file of root's or the lab owner's, and no link is on the way to it (a link is
// refused, not followed: what it points to may change between this check and the mount).
import type { Bind } from "../../config/containers.js";
import type { Host } from "../host/host.js";

/** Why the host path of a bind cannot be bound here; owners: the uids that may own it. */
export async function bindHostProblem(
  host: Host,
  b: Bind,
  owners: readonly number[],
): Promise<string | undefined> {
  const st = await host.fs.stat(b.host);
  if (!st) return `${b.host} does not exist`;
  const real = await host.fs.realpath(b.host).catch(() => undefined);
  if (real !== b.host)
    return `${b.host} is a symbolic link or has one on its way (to ${real ?? "nothing"}): name the real path`;
  if (!st.isDirectory && !st.isFile) return `${b.host} is neither a directory nor a file`;
  if (!owners.includes(st.uid))
    return `${b.host} belongs to uid ${st.uid}, not to root${owners.length > 1 ? " or the lab's owner" : ""}`;
  return undefined;
}

/** systemd-nspawn's option for a bind. */
export const bindArg = (b: Bind) => `--bind${b.readOnly ? "-ro" : ""}=${b.host}:${b.container}`;
