// The `aplspawn` command as one file: dist/bin/aplspawn.js, bundled from what tsc compiled into
// dist/ (run by `npm run build` after tsc). Node then reads and resolves one file in place of
// about 200 (ours and the dependencies'), which is most of what start-up costs before any work.
// dist/bin sits as deep as dist/cli, so every path the code resolves from its own file
// (`../..` from import.meta.url: package.json, config/, ansible/) is the same from the bundle.
// The modules it imports lazily (execa, undici, the workflows) stay lazy: bundled, evaluated on
// first use. dist/cli/main.js still works as the entry, and tests import dist/ as before.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
await build({
  entryPoints: [resolve(root, "dist/cli/main.js")],
  outfile: resolve(root, "dist/bin/aplspawn.js"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // The CommonJS dependencies (commander, cli-progress, …) call require(): an ES module has none.
  banner: {
    js: 'import { createRequire as bundleRequire } from "node:module";\nconst require = bundleRequire(import.meta.url);',
  },
  logLevel: "warning",
});
