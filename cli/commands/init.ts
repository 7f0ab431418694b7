// `aplspawn init`: write a starter config whose names and subnet collide with no other lab on this
// host and no route (src/lab/starter.ts picks them).
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import { UsageError } from "../../src/errors.js";
import { type CommandAdder, globals, packageDir, withExamples } from "../context.js";

/** `aplspawn init`: what it writes is a config aplspawn accepts as it is. */
export const initCommand: CommandAdder = (program, cli) =>
  withExamples(program.command("init"), ["aplspawn -c lab.yaml init --lab mylab"])
    .description("write a starter config (-c FILE, default ./aplspawn.yaml) that collides with no other lab")
    .option("--lab <name>", "the lab's name (default: default, else the first free of lab2, lab3, …)")
    .option("--force", "overwrite the file if it exists")
    .action(async (o: { lab?: string; force?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const host = cli.io.host;
      const file = resolve(g.config ?? "aplspawn.yaml");
      if (!o.force && (await host.fs.exists(file)))
        throw new UsageError(`${file} exists; give --force to overwrite it, or -c FILE to write another`);
      const [{ pickStarter, renderStarter, takenOnHost }, { parseConfig }] = await Promise.all([
        import("../../src/lab/starter.js"),
        import("../../config/load.js"),
      ]);
      if (process.getuid?.() !== 0)
        cli.io.err(
          "aplspawn: warning: not root: other labs' claims (/run/aplspawn-claims) and journals cannot be read, so only names and subnets seen here are avoided\n",
        );
      const signal = new AbortController().signal;
      // The default lab, up or down, has what the packaged config gives it.
      const packaged = parseConfig(
        await host.fs.readFile(resolve(packageDir, "config/aplspawn.yaml")),
        "config/aplspawn.yaml",
      );
      const { bridge, chain, address } = packaged.network;
      const taken = await takenOnHost({ host, signal }, packaged.workdir, { bridge, chain, subnet: address });
      let s: ReturnType<typeof pickStarter>;
      try {
        s = pickStarter(taken, o.lab);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      // The JSON Schema the package ships (config/aplspawn.schema.json, beside dist/).
      const text = renderStarter(s, resolve(packageDir, "config/aplspawn.schema.json"));
      // What is written must be a config aplspawn accepts as it is.
      const c = parseConfig(text, file);
      try {
        await host.fs.writeFile(file, text, 0o644);
      } catch (e) {
        // Where the user cannot write: theirs to fix (another -c FILE), not a bug.
        const code = (e as NodeJS.ErrnoException).code;
        const why: Record<string, string> = {
          EACCES: `permission denied in ${dirname(file)}`,
          EPERM: `permission denied in ${dirname(file)}`,
          EROFS: `${dirname(file)} is on a read-only file system`,
          ENOENT: `the directory ${dirname(file)} does not exist`,
          ENOTDIR: `${dirname(file)} is not a directory`,
        };
        if (!code || !why[code]) throw e;
        throw new UsageError(`cannot write ${file}: ${why[code]}; give -c FILE in a directory you can write`);
      }
      const [first, last] = c.containers.ipRange;
      if (g.json) cli.io.out(`${JSON.stringify({ ok: true, file, ...s, ipRange: [first, last] })}\n`);
      else
        cli.io.out(
          `‣ [ OK ] Wrote ${file}: lab ${s.lab}, bridge ${s.bridge}, chain ${s.chain}, subnet ${s.address}, containers ${s.prefix}* from ${first}\n` +
            `Then: sudo aplspawn${g.config ? ` -c ${file}` : ""} run up\n`,
        );
    });
