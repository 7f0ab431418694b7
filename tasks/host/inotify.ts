// fs.inotify.max_user_instances: every booted systemd container takes several inotify instances of
// root's, and at the default 128 new containers hang in early boot from about the 25th on. Raise
// it before starting containers, remember the old value, restore it on down.
import { defineTask, type TaskContext } from "../../src/runner/task.js";

/** Parameters. */
export interface InotifyParams {
  /** The least value that lets the lab boot. */
  minimum: number;
  /** The value written when the current one is below minimum. */
  value: number;
}

const PATH = "/proc/sys/fs/inotify/max_user_instances";

/** What the lab needs for `count` booted containers (about 40 each, besides the host's own use). */
export function inotifyFor(count: number): InotifyParams {
  const minimum = 128 + count * 40;
  return { minimum, value: Math.max(8192, minimum) };
}

async function current(ctx: TaskContext): Promise<number> {
  return Number((await ctx.host.fs.readFile(PATH)).trim());
}

/** Raises the inotify instance limit; rollback restores the value it found. */
export const hostInotify = defineTask<InotifyParams, { raisedTo: number }, { old: number }>({
  kind: "host.inotify",
  title: (p) => `Checking fs.inotify.max_user_instances is at least ${p.minimum}`,
  rollbackTitle: () => "Restoring fs.inotify.max_user_instances",
  async check(ctx, p) {
    return (await current(ctx)) >= p.minimum;
  },
  async prepare(ctx) {
    return { old: await current(ctx) };
  },
  async run(ctx, p) {
    await ctx.host.fs.appendFile(PATH, `${p.value}\n`);
    return { raisedTo: p.value };
  },
  async rollback(ctx, { params: p, intent }) {
    if (!intent) return;
    // Someone changed it since: theirs wins.
    const now = await current(ctx);
    if (now !== p.value) {
      if (now !== intent.old) ctx.info(`left at ${now}: it was changed after aplspawn raised it`);
      return;
    }
    await ctx.host.fs.appendFile(PATH, `${intent.old}\n`);
  },
});
