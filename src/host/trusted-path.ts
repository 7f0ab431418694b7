// Whether a path can be replaced by someone other than root, as ssh's StrictModes asks of a home:
// every directory from / down to it must be root's and writable by no one else (a world-writable
// directory with the sticky bit, /tmp, lets others add names but not replace ours). A lab's state,
// journal and mount points under such a path are root's alone; anything less lets another local
// user swap a directory for a link between our check and our write.
import type { Host } from "./host.js";

/** Why `path` (or the nearest part of it that exists) is not root's alone; undefined when it is. */
export async function replaceableBy(host: Host, path: string): Promise<string | undefined> {
  let existing = path;
  while (existing !== "/" && !(await host.fs.exists(existing)))
    existing = existing.slice(0, existing.lastIndexOf("/")) || "/";
  const real = await host.fs.realpath(existing);
  const parts = real.split("/").filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const dir = `/${parts.slice(0, i).join("/")}`;
    const st = await host.fs.stat(dir);
    if (!st) return `${dir} vanished while it was checked`;
    if (st.uid !== 0) return `${dir} is owned by uid ${st.uid}, not root`;
    const sticky = (st.mode & 0o1000) !== 0;
    if ((st.mode & 0o022) !== 0 && !(st.isDirectory && sticky && i < parts.length))
      return `${dir} is writable by ${st.mode & 0o002 ? "everyone" : `group ${st.gid}`} (mode ${(st.mode & 0o7777).toString(8)})`;
  }
  return undefined;
}

/** Why a directory that should be root's alone is open to others; undefined when it is private or absent. */
export async function notPrivate(host: Host, dir: string): Promise<string | undefined> {
  const st = await host.fs.stat(dir);
  if (!st) return undefined;
  if (st.uid !== 0) return `it is owned by uid ${st.uid}, not root`;
  if ((st.mode & 0o077) !== 0)
    return `other users can reach into it (mode ${(st.mode & 0o7777).toString(8)})`;
  return undefined;
}
