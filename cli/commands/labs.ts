// `aplspawn labs`: every lab on this host, up or down (kind's `get clusters`, Vagrant's
// `global-status`): from the index of labs (src/lab/registry.ts), each lab's journal (what of it
// is live) and the processes the journal recorded (which containers run).
import type { Command } from "commander";
import { ExitError } from "../../src/errors.js";
import { printable } from "../../src/runner/report.js";
import { type CommandAdder, globals, withExamples } from "../context.js";

/** One lab, as `labs` shows it. */
export interface LabRow {
  lab: string;
  /** up: every container runs; partial: something of it is live; down: nothing is. */
  state: "up" | "partial" | "down";
  containersUp: number;
  containers: number;
  bridge: string;
  subnet: string;
  owner: string | null;
  config: string;
  labDir: string;
  /** A lab across hosts: each host, its containers and their states as that host reports them. */
  hosts?: import("../cluster-commands.js").ClusterLabPart["hosts"];
}

function table(rows: readonly LabRow[]): string {
  const head = ["LAB", "STATE", "CONTAINERS", "BRIDGE", "SUBNET", "OWNER", "CONFIG"];
  const cells = rows.map((r) => [
    r.lab,
    r.state,
    `${r.containersUp}/${r.containers}`,
    r.bridge,
    r.subnet,
    r.owner ?? "-",
    r.config,
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
  const line = (c: string[]) =>
    c
      .map((x, i) => (i === c.length - 1 ? x : x.padEnd(width[i] ?? 0)))
      .join("  ")
      .trimEnd();
  // A lab across hosts: a line per host under its row (which host holds which container, its state).
  const under = (r: LabRow) =>
    (r.hosts ?? []).map(
      (h) =>
        `  ${h.host} (${h.address}): ${h.error ? `no answer: ${printable(h.error)}` : h.containers.map((k) => `${k.name} ${k.state}`).join(", ") || "no containers"}`,
    );
  return `${[line(head), ...rows.flatMap((r, i) => [line(cells[i] ?? []), ...under(r)])].join("\n")}\n`;
}

/** `aplspawn labs`: the index of labs, each with what of it is live. */
export const labsCommand: CommandAdder = (program, cli) =>
  withExamples(program.command("labs"), ["sudo aplspawn labs", "sudo aplspawn labs --json"])
    .description("every lab on this host, up or down: state, containers up, bridge, subnet, owner, config")
    .action(async (_o: unknown, cmd: Command) => {
      const g = globals(cmd);
      const host = cli.io.host;
      if (host.uid() !== 0)
        throw new ExitError(
          "labs reads root's state (the index of labs, their journals): sudo aplspawn labs",
        );
      const [{ recordedLabs, recordedConfig }, { labState }, { labLook }] = await Promise.all([
        import("../../src/lab/registry.js"),
        import("../../src/lab/state.js"),
        import("../../workflows/lab-params.js"),
      ]);
      const rows: LabRow[] = [];
      for (const r of await recordedLabs(host)) {
        const c = recordedConfig(r);
        if (!c) continue;
        const s = await labState(host, labLook(c));
        // Across hosts: its containers run there, as each host's aplspawn says (through Ansible).
        const part = c.cluster
          ? await (await import("../cluster-commands.js")).clusterLabPart(cli, c, r.file)
          : undefined;
        const up = part?.containersUp ?? s.containersUp;
        rows.push({
          lab: r.lab,
          state: up === s.containers && s.containers > 0 ? "up" : s.live || part?.live ? "partial" : "down",
          containersUp: up,
          containers: s.containers,
          bridge: c.network.bridge,
          subnet: s.subnet,
          owner: r.owner ?? null,
          config: r.file,
          labDir: r.labDir,
          ...(part ? { hosts: part.hosts } : {}),
        });
      }
      if (g.json) cli.io.out(`${JSON.stringify(rows)}\n`);
      else if (rows.length === 0) cli.io.out("no labs on this host (sudo aplspawn run up makes one)\n");
      else cli.io.out(table(rows));
    });
