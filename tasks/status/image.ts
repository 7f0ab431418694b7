// The image checks of `aplspawn status`, as the original tool had them: the image is attached to a
// loop device (and which), and that device is mounted read-only on the lower directory.
import { imagePath, lowerDir } from "../../config/paths.js";
import type { Config } from "../../config/schema.js";
import { inspectImage, lowerState, rootLoops } from "../../src/image/attach-state.js";
import type { Probe } from "../../src/runner/probe.js";

/** The image checks of `aplspawn status`. */
export const imageProbes = (c: Config): Probe[] => {
  const image = imagePath(c);
  const lower = lowerDir(c);
  return [
    {
      name: "Checking if image is mounted correctly to loop device",
      target: image,
      async run(ctx) {
        const s = await inspectImage(ctx, image);
        if (s.kind === "missing") return { ok: false, detail: "the image does not exist" };
        if (s.kind === "dir") return { ok: true, detail: "a directory tree: no loop device needed" };
        const loops = await rootLoops(ctx, s);
        if (loops.length === 0)
          return { ok: false, detail: "no loop device holds the image's root partition" };
        return { ok: true, detail: loops.map((l) => l.name).join(", ") };
      },
    },
    {
      name: "Checking if loop (image root) is mounted to lower",
      target: lower,
      async run(ctx) {
        const s = await lowerState(ctx, image, lower);
        if (!s.mount) return { ok: false, detail: "nothing is mounted there" };
        const what = `${s.device ?? s.mount.source} (${s.mount.fstype}, ${s.readOnly ? "ro" : "rw"})`;
        if (!s.isImage) return { ok: false, detail: `${what} is mounted there, not the image's root` };
        if (!s.readOnly) return { ok: false, detail: `${what}: mounted read-write` };
        return { ok: true, detail: what };
      },
    },
  ];
};
