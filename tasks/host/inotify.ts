// fs.inotify.max_user_instances: every booted systemd container takes several inotify instances of
// root's, and at the default 128 new containers hang in early boot from about the 25th on. Raise
// it before starting containers. The limit is host-wide: the lab holds it (tasks/host/held-setting),
// and the value found before any lab raised it comes back when the last lab lets go.
import { z } from "zod";
import type { TaskContext } from "../../src/runner/task.js";
import { heldParamsSchema, heldSettingTask } from "./held-setting.js";

/** Parameters. */
const inotifyParamsSchema = heldParamsSchema.extend({
  /** The least value that lets the lab boot. */
  minimum: z.number(),
  /** The value written when the current one is below minimum. */
  value: z.number(),
});
export type InotifyParams = z.infer<typeof inotifyParamsSchema>;

const PATH = "/proc/sys/fs/inotify/max_user_instances";

/** What the lab needs for `count` booted containers (about 40 each, besides the host's own use). */
export function inotifyFor(count: number): Omit<InotifyParams, "holder"> {
  const minimum = 128 + count * 40;
  return { minimum, value: Math.max(8192, minimum) };
}

/** Raises the inotify instance limit (when below the lab's minimum) and holds it. */
export const hostInotify = heldSettingTask<InotifyParams>({
  kind: "host.inotify",
  params: inotifyParamsSchema,
  name: "fs.inotify.max_user_instances",
  title: (p) => `Checking fs.inotify.max_user_instances is at least ${p.minimum}`,
  rollbackTitle: () => "Letting go of fs.inotify.max_user_instances (the last lab restores it)",
  setting: async (ctx: TaskContext) => ({
    key: "inotify",
    read: async () => (await ctx.host.fs.readFile(PATH)).trim(),
    write: (v) => ctx.host.fs.appendFile(PATH, `${v}\n`),
  }),
  want: (p, cur) => (Number(cur) >= p.minimum ? undefined : String(p.value)),
});
