// --no-color: told to the terminal's renderer, not put into the environment that every command
// aplspawn runs (ansible-playbook, ssh, debootstrap) inherits.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { test } from "node:test";
import { runMain } from "../support/main-io.js";

const ROOT = resolve(import.meta.dirname, "../../..");

test("--no-color leaves process.env alone", async () => {
  const before = process.env.NO_COLOR;
  const r = await runMain(["--no-color", "names"]);
  assert.equal(r.code, 0, r.err);
  assert.equal(process.env.NO_COLOR, before);
});

test("--no-color: listr2's tree draws every icon without color, where colors are on", () => {
  // Colors are decided when listr2 loads: a process of its own, with them forced on.
  const script = `
    import { DefaultRenderer, ListrDefaultRendererLogLevels } from "listr2";
    import { RunState } from "${resolve(ROOT, "dist/src/runner/run-state.js")}";
    const icons = (color) => {
      const o = new RunState({ mode: "tty", emit() {}, ...(color === undefined ? {} : { color }) }).listrOptions();
      const r = new DefaultRenderer([], o.rendererOptions);
      return Object.values(ListrDefaultRendererLogLevels).map((l) => r.logger.icon(l, "x") ?? "");
    };
    console.log(JSON.stringify({ colored: icons(undefined), plain: icons(false) }));
  `;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    cwd: ROOT,
    env: { ...process.env, FORCE_COLOR: "1", NO_COLOR: undefined },
    encoding: "utf8",
  });
  const { colored, plain } = JSON.parse(out) as { colored: string[]; plain: string[] };
  // The check can see color: without --no-color the icons carry escape sequences.
  assert.ok(colored.some((i) => i.includes("\x1b[")));
  assert.deepEqual(
    plain,
    plain.map(() => "x"),
  );
});
