// The CLI called in-process (citty-style: argv as a parameter), with what it prints collected.
import { main } from "../../cli/main.js";
import type { Host } from "../../src/host/host.js";
import { realHost } from "../../src/host/real-host.js";

/** Run the CLI on `host` (the real one by default); its exit code and what it wrote. */
export async function runMain(
  argv: string[],
  o: { host?: Host; env?: Record<string, string> } = {},
): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, {
    host: o.host ?? realHost(),
    out: (s) => (out += s),
    err: (s) => (err += s),
    isTTY: false,
    env: o.env ?? {},
    exit: (c: number): never => {
      throw new Error(`exit ${c}`);
    },
  });
  return { code, out, err };
}
