// The image commands of the CLI: `image build` (the image from image.build, as a one-task run with
// journal, lock and rollback like any workflow) and `image inspect` (where an image's root is).
// Heavy modules are imported when a command runs, so the CLI starts without them.
import { resolve } from "node:path";
import { imagePath } from "../config/paths.js";
import type { CommandAdder, GlobalOptions } from "./context.js";

const image: CommandAdder = (program, cli) => {
  const cmd = program.command("image").description("build or inspect the lab's image");
  cmd
    .command("build")
    .description(
      "build the image from image.build: debootstrap → squashfs → GPT disk image (as mkosi makes them), plus SHA256SUMS beside it",
    )
    .option("--output <file>", "where to write the image (default: the path of image.url)")
    .option("--rootfs <dir>", "use this debootstrapped root tree (copied) instead of running debootstrap")
    .option("--force", "build even when the image exists (it is replaced once the new one is complete)")
    .option("--dry-run", "only check; print what would change")
    .action(async (o: { output?: string; rootfs?: string; force?: boolean; dryRun?: boolean }, c) => {
      const g = c.optsWithGlobals() as GlobalOptions;
      const config = await cli.load(g);
      const [{ configSchema }, { imageBuildStep }] = await Promise.all([
        import("../config/schema.js"),
        import("../workflows/getimage.js"),
      ]);
      // Without image.build in the config, the default recipe (bookworm with systemd, sshd, python3…).
      const build = config.image.build ?? configSchema.parse({}).image.build!;
      const step = imageBuildStep(config, {
        build,
        ...(o.output ? { target: resolve(o.output) } : {}),
        ...(o.rootfs ? { rootfs: resolve(o.rootfs) } : {}),
        ...(o.force ? { force: true } : {}),
      });
      await cli.run({ name: "image build", steps: [step] }, config, g, {
        dryRun: o.dryRun === true,
        command: "aplspawn image build",
      });
    });
  cmd
    .command("inspect")
    .description("show where an image's root filesystem is: partition table, partition, filesystem")
    .argument("[file]", "image file (default: the path of image.url)")
    .action(async (file: string | undefined, _o: unknown, c) => {
      const g = c.optsWithGlobals() as GlobalOptions;
      const path = file ? resolve(file) : imagePath(await cli.load(g));
      const [{ inspectImage }, { describeLayout }] = await Promise.all([
        import("../src/image/attach-state.js"),
        import("../src/image/partition-table.js"),
      ]);
      const s = await inspectImage({ host: cli.io.host, signal: new AbortController().signal }, path);
      if (g.json) {
        const { kind } = s;
        cli.io.out(
          `${JSON.stringify(kind === "file" ? { path, kind, fs: s.fs ?? null, ...s.layout } : { path, kind })}\n`,
        );
        return;
      }
      if (s.kind === "missing") cli.io.out(`${path}: does not exist\n`);
      else if (s.kind === "dir")
        cli.io.out(`${path}: a directory tree (bind-mounted read-only as the lower layer)\n`);
      else {
        cli.io.out(`${path}: ${describeLayout(s.layout, s.fs)}\n`);
        for (const n of s.layout.notes) cli.io.out(`  note: ${n}\n`);
      }
    });
};

/** Commands added to the program. */
export const imageCommands: CommandAdder[] = [image];
