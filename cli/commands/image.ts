// `aplspawn image build|inspect`: `image build` makes the lab's images from their recipes, or pulls
// them, as a one-task run with journal, lock and rollback like any workflow; `image inspect` says
// where an image's root is. Heavy modules are imported when a command runs, so the CLI starts
// without them.
import { resolve } from "node:path";
import type { Command } from "commander";
import { type CliContext, type CommandAdder, type GlobalOptions, withExamples } from "../context.js";

const EXAMPLES: Record<string, string[]> = {
  image: ["sudo aplspawn image build", "aplspawn image inspect"],
  build: ["sudo aplspawn image build --set db --force"],
  inspect: ["aplspawn image inspect /var/lib/aplspawn/images/debian-bookworm.img"],
};

/** `aplspawn image` and its subcommands, each with its examples. */
export const imageCommand: CommandAdder = (program, cli) => {
  const cmd = program.command("image").description("build or inspect the lab's image");
  cmd
    .command("build")
    .description(
      "build the lab's images from their recipes (image.build, containers.sets[].image.build): debootstrap → squashfs → GPT disk image (as mkosi makes them), plus SHA256SUMS beside each; pull an OCI image (image.oci) or an image server's (image.server + image.alias) into the image store",
    )
    .option("--set <name>", "only the image of this set (containers.sets)")
    .option("--output <file>", "where to write the image (default: the path of its url; one image only)")
    .option(
      "--rootfs <dir>",
      "use this debootstrapped root tree (copied) instead of running debootstrap (one image only)",
    )
    .option("--force", "build even when the image exists (it is replaced once the new one is complete)")
    .option("--dry-run", "only check; print what would change")
    .action((o: BuildOptions, c: Command) => imageBuild(cli, o, c));
  cmd
    .command("inspect")
    .description("show where an image's root filesystem is: partition table, partition, filesystem")
    .argument("[file]", "image file (default: each image of the lab, one after the other)")
    .action((file: string | undefined, _o: unknown, c: Command) => imageInspect(cli, file, c));
  for (const c of [cmd, ...cmd.commands]) {
    const ex = EXAMPLES[c.name()];
    if (ex) withExamples(c, ex);
  }
};

type BuildOptions = { set?: string; output?: string; rootfs?: string; force?: boolean; dryRun?: boolean };

/** `image build`: the chosen images' build or pull steps as one run, then what `run up` adds. */
async function imageBuild(cli: CliContext, o: BuildOptions, c: Command): Promise<void> {
  const g = c.optsWithGlobals() as GlobalOptions;
  const config = await cli.load(g);
  const [
    { configSchema },
    { imageBuildStep, imagePullStep },
    { labImages, isPulled, pulledName },
    { UsageError },
  ] = await Promise.all([
    import("../../config/schema.js"),
    import("../../workflows/getimage.js"),
    import("../../config/images.js"),
    import("../../src/errors.js"),
  ]);
  const images = labImages(config);
  let chosen = images;
  if (o.set !== undefined) {
    const sets = config.containers.sets?.map((s) => s.name) ?? [];
    if (!sets.includes(o.set))
      throw new UsageError(
        `--set: no set named ${o.set} in this lab${sets.length ? `; sets: ${sets.join(", ")}` : " (it has no containers.sets)"}`,
      );
    chosen = images.filter((i) => i.sets.includes(o.set!));
  }
  if ((o.output || o.rootfs) && chosen.length > 1)
    throw new UsageError(
      `--output and --rootfs build one image; this lab has ${chosen.length} (${chosen.map((i) => i.path).join(", ")}): name one with --set`,
    );
  // The config's image without a recipe is built from the default one (bookworm with systemd,
  // sshd, python3…); a set's image without one is not aplspawn's to build.
  // An OCI image (image.oci) is pulled instead, an image server's (image.server) downloaded.
  const recipe = (i: (typeof images)[number]) =>
    isPulled(i.section)
      ? undefined
      : (i.section.build ?? (i.id === undefined ? configSchema.parse({}).image.build : undefined));
  const pulled = chosen.filter((i) => isPulled(i.section));
  if (pulled.length && (o.output || o.rootfs))
    throw new UsageError(
      `--output and --rootfs build an image; ${pulledName(pulled[0]!.section)} is pulled, not built`,
    );
  const unbuildable = chosen.filter((i) => !recipe(i) && !isPulled(i.section));
  if (unbuildable.length === chosen.length && o.set !== undefined)
    throw new UsageError(
      `--set ${o.set}: its image ${chosen[0]!.path} has no build recipe (containers.sets[].image.build)`,
    );
  for (const i of unbuildable)
    cli.io.err(`aplspawn: ${i.path} (sets ${i.sets.join(", ")}) has no build recipe: not built\n`);
  const steps = chosen.flatMap((image) => {
    if (isPulled(image.section)) return imagePullStep(config, image, o.force === true);
    const build = recipe(image);
    return build
      ? [
          imageBuildStep(config, {
            image,
            build,
            ...(o.output ? { target: resolve(o.output) } : {}),
            ...(o.rootfs ? { rootfs: resolve(o.rootfs) } : {}),
            ...(o.force ? { force: true } : {}),
          }),
        ]
      : [];
  });
  await cli.run({ name: "image build", steps }, config, g, {
    dryRun: o.dryRun === true,
    command: "aplspawn image build",
  });
  if (g.json || o.dryRun) return;
  // The packages layer (image.packages) is made by `run up`: it installs through the lab's
  // network. Said here, with what the store already holds for each image.
  const [{ packagesLayersOf }, { imageStore }] = await Promise.all([
    import("../../src/image/layer-store.js"),
    import("../../config/paths.js"),
  ]);
  for (const image of chosen) {
    const layers = await packagesLayersOf(cli.io.host, imageStore(config), image.path);
    for (const l of layers)
      cli.io.out(`${image.path}: packages layer ${l.path} (${l.source.split(" ").slice(1).join(" ")})\n`);
    const wanted = image.section.packages;
    if (layers.length === 0 && (wanted === undefined || wanted.length > 0))
      cli.io.out(
        `${image.path}: ${wanted ? `packages ${wanted.join(", ")}` : "sshd and python3 if it lacks them"} (image.packages) go into a layer the first \`run up\` makes, through the lab's network\n`,
      );
  }
}

/** `image inspect`: each image's layout (or the lab's images, one after the other). */
async function imageInspect(cli: CliContext, file: string | undefined, c: Command): Promise<void> {
  const g = c.optsWithGlobals() as GlobalOptions;
  const config = file ? undefined : await cli.load(g);
  const paths = config
    ? (await import("../../config/images.js")).labImages(config).map((i) => i.path)
    : [resolve(file ?? "")];
  const [{ inspectImage }, { describeLayout }, { packagesLayersOf }, { imageStore }] = await Promise.all([
    import("../../src/image/attach-state.js"),
    import("../../src/image/partition-table.js"),
    import("../../src/image/layer-store.js"),
    import("../../config/paths.js"),
  ]);
  // As ls does: what can be inspected is, then exit 2 naming what could not (missing, unreadable).
  const unusable: string[] = [];
  for (const path of paths) {
    let s: Awaited<ReturnType<typeof inspectImage>>;
    try {
      s = await inspectImage({ host: cli.io.host, signal: new AbortController().signal }, path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "EACCES" && code !== "EPERM") throw e;
      unusable.push(`${path}: cannot be read (permission denied)`);
      continue;
    }
    if (s.kind === "missing") unusable.push(`${path}: does not exist`);
    // The packages layers (image.packages) made for it, when the lab's config says where the store is.
    const layers = config ? await packagesLayersOf(cli.io.host, imageStore(config), path) : [];
    if (g.json) {
      const { kind } = s;
      const packagesLayers = layers.map((l) => ({ path: l.path, source: l.source, size: l.size }));
      cli.io.out(
        `${JSON.stringify(kind === "file" ? { path, kind, fs: s.fs ?? null, ...s.layout, packagesLayers } : { path, kind, packagesLayers })}\n`,
      );
      continue;
    }
    if (s.kind === "dir")
      cli.io.out(`${path}: a directory tree (bind-mounted read-only as the lower layer)\n`);
    else if (s.kind === "file") {
      cli.io.out(`${path}: ${describeLayout(s.layout, s.fs)}\n`);
      for (const n of s.layout.notes) cli.io.out(`  note: ${n}\n`);
    }
    for (const l of layers)
      cli.io.out(
        `  packages layer (image.packages): ${l.path}, ${l.source.split(" ").slice(1).join(" ")}, ${l.size} bytes\n`,
      );
  }
  if (unusable.length > 0) {
    const { UsageError } = await import("../../src/errors.js");
    throw new UsageError(unusable.join("\naplspawn: "));
  }
}
