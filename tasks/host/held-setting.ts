// A task that makes a host-wide setting hold what the lab needs and holds it for the lab
// (src/lab/holds.ts): ip_forward and the inotify limit are both this, with their own value and
// scope. Check: the value will do and the lab holds it. Run: hold it, writing the value if needed.
// Rollback: let go; the last lab to let go puts the original value back.

import { z } from "zod";
import type { HostContext } from "../../src/host/host.js";
import {
  holderSchema,
  holdSetting,
  holdsSetting,
  releaseSetting,
  type SharedSetting,
} from "../../src/lab/holds.js";
import { defineTask, type Shape, type TaskDef, unmet } from "../../src/runner/task.js";

/** Parameters every held setting has (a task's own extend these). */
export const heldParamsSchema = z.object({
  /** The lab that holds the setting. */
  holder: holderSchema,
});
export type HeldParams = z.infer<typeof heldParamsSchema>;

/** What run journals: the value it wrote, if it wrote one. */
const heldResultSchema = z.object({ wrote: z.string().optional() });

/** What makes one held-setting task. */
export interface HeldSettingSpec<P extends HeldParams> {
  kind: string;
  /** The shape of the task's params (journaled). */
  params: Shape<P>;
  title(p: P): string;
  rollbackTitle(p: P): string;
  /** The setting's name in messages, e.g. "net.ipv4.ip_forward". */
  name: string;
  setting(ctx: HostContext): Promise<SharedSetting>;
  /** The line of `aplspawn status` for it, if status shows it. */
  status?(p: P): { name: string; target: string };
  /** A note to show when the task wrote the value (what the change means beyond the lab). */
  noteOnWrite?(ctx: HostContext, wrote: string): Promise<string | undefined>;
  /** The value to write given the current one; undefined when the current one will do. */
  want(p: P, current: string): string | undefined;
}

/** Define the task. */
export function heldSettingTask<P extends HeldParams>(
  spec: HeldSettingSpec<P>,
): TaskDef<P, z.infer<typeof heldResultSchema>, void> {
  return defineTask({
    kind: spec.kind,
    journaled: { params: spec.params, result: heldResultSchema },
    title: spec.title,
    rollbackTitle: spec.rollbackTitle,
    ...(spec.status ? { status: spec.status } : {}),
    async check(ctx, p) {
      const s = await spec.setting(ctx);
      const cur = await s.read();
      if (spec.want(p, cur) !== undefined) return unmet(`${spec.name} is ${cur}`);
      return (
        (await holdsSetting(ctx.host, s, p.holder.lab)) ||
        unmet(`lab ${p.holder.lab} does not hold ${spec.name}`)
      );
    },
    async run(ctx, p) {
      const r = await holdSetting(
        ctx.host,
        await spec.setting(ctx),
        p.holder,
        (cur) => spec.want(p, cur),
        ctx.signal,
      );
      const note = r.wrote !== undefined ? await spec.noteOnWrite?.(ctx, r.wrote) : undefined;
      if (note) ctx.info(note);
      return r;
    },
    async rollback(ctx, { params: p }) {
      const r = await releaseSetting(ctx.host, await spec.setting(ctx), p.holder.lab, ctx.signal);
      if (r.others.length > 0)
        ctx.info(`${spec.name} left as it is: lab ${r.others.join(", ")} still relies on it`);
      if (r.leftChanged)
        ctx.info(`${spec.name} left at ${r.leftChanged}: it was changed after aplspawn set it`);
    },
  });
}
