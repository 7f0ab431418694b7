// `aplspawn pids`: the leader PID of each running container (the original tool's report).
import type { Command } from "commander";
import { ExitError } from "../../src/errors.js";
import { warnOn } from "../container-access.js";
import { type CommandAdder, globals, withExamples } from "../context.js";

/** `aplspawn pids`: a container that does not run fails it, after the rest are printed. */
export const pidsCommand: CommandAdder = (program, cli) =>
  withExamples(program.command("pids"), ["sudo aplspawn pids"])
    .description("the leader PID of each running container, one per line")
    .action(async (_o: unknown, cmd: Command) => {
      const g = globals(cmd);
      const c = await cli.load(g);
      const [{ containerStates }, { labLook }] = await Promise.all([
        import("../../src/lab/state.js"),
        import("../../workflows/lab-params.js"),
      ]);
      const states = await containerStates(cli.io.host, labLook(c), { warn: warnOn(cli) });
      const live = states.filter((s) => s.leaderPid !== undefined);
      if (g.json) cli.io.out(`${JSON.stringify(states)}\n`);
      else cli.io.out(live.map((s) => `${s.leaderPid}\n`).join(""));
      const down = states.filter((s) => s.leaderPid === undefined).map((s) => s.name);
      if (down.length > 0) throw new ExitError(`not running: ${down.join(", ")}`);
    });
