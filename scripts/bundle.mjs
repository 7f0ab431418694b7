// The `aplspawn` command as one file plus its V8 code cache, run by `npm run build` after tsc:
// dist/bin/aplspawn.cjs bundles what tsc compiled into dist/ (dist/cli/main.js and all it
// imports), and dist/bin/aplspawn.cache is V8's code for it after one `aplspawn --version` (every
// module's top level, commander's set-up). dist/cli/bin.js, package.json's bin, runs the bundle
// with the cache (cli/bundle-loader.ts). Node then reads and compiles one file, mostly from the
// cache, in place of resolving, reading and compiling about 430 modules. The modules the CLI
// imports lazily (execa, undici, the workflows) stay lazy: bundled, evaluated on first use.
// dist/cli/main.js still works as the entry, and tests import dist/ modules as before.
import { rmSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { bundleFile, codeCacheFile, runBundle } = await import(
  pathToFileURL(resolve(root, "dist/cli/bundle-loader.js")).href
);
// V8 takes a cache for a source of the same length as its own: never leave an old one beside a new
// bundle (a build that fails after esbuild).
rmSync(codeCacheFile, { force: true });
await build({
  entryPoints: [resolve(root, "dist/cli/main.js")],
  outfile: bundleFile,
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  // The launcher's URL (cli/bundle-loader.ts): paths resolved from it are those of dist/cli.
  define: { "import.meta.url": "bundleEntryUrl" },
  logLevel: "warning",
});
// One run of `aplspawn --version` through the launcher, then V8's code for what it compiled.
const bin = resolve(root, "dist/cli/bin.js");
process.argv = [process.argv[0] ?? "node", bin, "--version"];
process.stdout.write = () => true; // the version it prints
const script = runBundle(pathToFileURL(bin).href, false);
process.once("exit", () => writeFileSync(codeCacheFile, script.createCachedData()));
