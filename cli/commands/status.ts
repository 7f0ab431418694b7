// `aplspawn status`: up's own checks of the network, the image and every container (as root), or
// the ssh logins (anyone else), as the original tool's table or --json.
import { setMaxListeners } from "node:events";
import type { Command } from "commander";
import { containerSpecs } from "../../config/containers.js";
import { labImages } from "../../config/images.js";
import type { Config } from "../../config/schema.js";
import { ExitError } from "../../src/errors.js";
import type { ProbeResult } from "../../src/runner/probe.js";
import { sshFiles } from "../container-access.js";
import { type CommandAdder, globals, withExamples } from "../context.js";

/** The status table in the original tool's style; a header line before each container's checks. */
function renderStatus(c: Config, results: readonly ProbeResult[]): string {
  const specs = new Map(containerSpecs(c).map((s) => [s.name, s]));
  const prefix = c.network.address.split("/")[1];
  // With several images, an image's check says which one.
  const images = labImages(c).map((i) => i.path);
  const lines: string[] = [];
  let last: string | undefined;
  for (const r of results) {
    const s = specs.get(r.target);
    if (s && r.target !== last) lines.push(`‣ [ INFO ] Checking container ${s.name}, ip ${s.ip}/${prefix}`);
    last = r.target;
    const name = images.length > 1 && images.includes(r.target) ? `${r.name} (${r.target})` : r.name;
    lines.push(r.ok ? `‣ [ OK ] ${name}` : `‣ [ FAIL ] ${name}${r.detail ? `: ${r.detail}` : ""}`);
  }
  const failed = results.filter((r) => !r.ok).length;
  lines.push(
    failed === 0
      ? `‣ [ DONE ] all ${results.length} checks passed`
      : `‣ [ FAILED ] ${failed} of ${results.length} checks failed`,
  );
  return `${lines.join("\n")}\n`;
}

/** `aplspawn status`: exit 0 only when every check passes. */
export const statusCommand: CommandAdder = (program, cli) =>
  withExamples(program.command("status"), ["sudo aplspawn status", "aplspawn status --json"])
    .description("check the network, image and every container (exit 0 only when all pass)")
    .action(async (_o: unknown, cmd: Command) => {
      const g = globals(cmd);
      const loaded = await cli.loadFile(g);
      const c = loaded.config;
      const [{ statusProbes }, { runProbes }, { loginProbes }] = await Promise.all([
        import("../../workflows/status.js"),
        import("../../src/runner/probe.js"),
        import("../../tasks/status/container.js"),
      ]);
      if (!g.json) cli.io.out(`‣ [ INFO ] ${cli.whichLab(loaded)}\n`);
      // Across hosts: each host's own status of its share, through Ansible.
      if (c.cluster) return (await import("../cluster-commands.js")).clusterStatus(cli, loaded, g);
      // Not root: what the user's own copies reach (ssh logins); the rest is root's to read.
      const asRoot = process.getuid?.() === 0;
      // A lab that is down is said to be, at once: not a FAIL line for every check of every container.
      if (asRoot) {
        const [{ labState }, { labLook }] = await Promise.all([
          import("../../src/lab/state.js"),
          import("../../workflows/lab-params.js"),
        ]);
        const s = await labState(cli.io.host, labLook(c));
        if (!s.live && s.containersUp === 0) {
          if (g.json) cli.io.out(`${JSON.stringify({ ok: false, state: "down", checks: [] })}\n`);
          throw new ExitError(
            `lab ${c.lab} is down: nothing of it runs; bring it up with \`${cli.upCommand(loaded)}\``,
          );
        }
      }
      if (!asRoot && !g.json)
        cli.io.out(
          "‣ [ INFO ] not root: checking ssh logins only; the network, image, mounts and processes need root (sudo aplspawn status)\n",
        );
      const probes = asRoot ? statusProbes(c) : loginProbes(c, await sshFiles(cli, c));
      const signal = new AbortController().signal;
      // Every concurrent probe's command listens on this one signal.
      setMaxListeners(0, signal);
      const results = await runProbes(probes, { host: cli.io.host, signal });
      const ok = results.every((r) => r.ok);
      if (g.json)
        cli.io.out(
          `${JSON.stringify({ ok, checks: results.map((r) => ({ name: r.name, target: r.target, ok: r.ok, detail: r.detail ?? "" })) })}\n`,
        );
      else cli.io.out(renderStatus(c, results));
      if (!ok) throw new ExitError(`${results.filter((r) => !r.ok).length} status checks failed`);
    });
