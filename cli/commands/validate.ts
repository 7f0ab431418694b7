// `aplspawn validate [FILE]`: the config checked as `run up` will check it (the playbook as whom
// will run it, the bridge name, the binds' host paths), every problem printed, or --json.
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import { ExitError, UsageError } from "../../src/errors.js";
import { type CommandAdder, globals, loadConfig, packageDir, withExamples } from "../context.js";
import { ansibleAccount, ownerOf } from "../lab-access.js";

/** `aplspawn validate [FILE]`: every problem at once (exit 2), or what the lab will be. */
export const validateCommand: CommandAdder = (program, { io }) =>
  withExamples(program.command("validate"), ["aplspawn validate lab.yaml", "aplspawn --json validate"])
    .description("check a config file and print every problem")
    .argument("[file]", "config file (default: as for -c)")
    .action(async (file: string | undefined, _o: unknown, cmd: Command) => {
      const g = globals(cmd);
      let loaded: Awaited<ReturnType<typeof loadConfig>>;
      // What could not be checked (no ansible-playbook): said, and the config still valid.
      const warnings: string[] = [];
      const warn = (w: string) => {
        warnings.push(w);
        if (!g.json) io.err(`aplspawn: warning: ${w}\n`);
      };
      try {
        loaded = await loadConfig(
          io.host,
          file ?? g.config ?? (io.env.APLSPAWN_CONFIG || undefined),
          packageDir,
          {
            // As `run up` will run it: as the lab's owner when there will be one.
            playbook: {
              owner: async (c) =>
                io.host.uid() === 0
                  ? ((await ownerOf(io, undefined, dirname(resolve(c.inventory.file)), false)) ??
                    (await ansibleAccount(io, undefined)))
                  : undefined,
            },
            interfaces: true,
            // As `run up` will check them again: root's, or the lab's owner's (sudo from their account).
            binds: io.env.SUDO_UID && io.env.SUDO_UID !== "0" ? { owner: Number(io.env.SUDO_UID) } : {},
            warn,
          },
        );
      } catch (e) {
        // --json: the problems as data, each with its key and where it is (exit 2 all the same). A
        // file that cannot be read says so in a sentence of its own, its diagnostic the cause.
        const { ConfigError } = await import("../../config/diagnostic.js");
        const bad = e instanceof ConfigError ? e : e instanceof UsageError ? e.cause : undefined;
        if (g.json && bad instanceof ConfigError) {
          const more = warnings.length ? { warnings } : {};
          io.out(`${JSON.stringify({ ok: false, file: bad.file, diagnostics: bad.items, ...more })}\n`);
          throw new ExitError("", 2);
        }
        throw e;
      }
      const { file: used, config: c } = loaded;
      const [{ containerSpecs }, { labImages }, { subnetOf }] = await Promise.all([
        import("../../config/containers.js"),
        import("../../config/images.js"),
        import("../../config/ip.js"),
      ]);
      const lab = {
        lab: c.lab,
        containers: containerSpecs(c).length,
        sets: (c.containers.sets ?? []).map((s) => ({ name: s.name, count: s.count })),
        subnet: subnetOf(c.network.address),
        bridge: c.network.bridge,
        images: labImages(c).map((i) => i.path),
      };
      const sets = lab.sets.length ? ` (${lab.sets.map((s) => `${s.name} ×${s.count}`).join(", ")})` : "";
      io.out(
        g.json
          ? `${JSON.stringify({ ok: true, file: used, ...lab, ...(warnings.length ? { warnings } : {}) })}\n`
          : `${used}: valid: lab ${lab.lab}, ${lab.containers} container${lab.containers === 1 ? "" : "s"}${sets}, subnet ${lab.subnet} on bridge ${lab.bridge}, image${lab.images.length === 1 ? "" : "s"} ${lab.images.join(", ")}\n`,
      );
    });
