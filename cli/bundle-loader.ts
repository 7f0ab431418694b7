// Loads the bundled CLI (dist/bin/aplspawn.cjs, made by scripts/bundle.mjs) with the V8 code cache
// the build made beside it (dist/bin/aplspawn.cache): what Node 22's module.enableCompileCache()
// does, done once at build time for Node 20. V8 checks the cache against the source, its own
// version and its flags, and rejects a cache that does not match (another Node, other flags): the
// bundle is then compiled as usual. Its check of the source is by length only, so the build
// removes the cache before it writes a new bundle. Both files are the package's own (root's, as
// the code is), written by its build.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Script } from "node:vm";

const binDir = resolve(dirname(fileURLToPath(import.meta.url)), "../bin");
export const bundleFile = resolve(binDir, "aplspawn.cjs");
export const codeCacheFile = resolve(binDir, "aplspawn.cache");

/**
 * Compile and run the bundle as a CommonJS module. `entryUrl` is what the bundle sees as its
 * import.meta.url: the launcher's own URL (dist/cli, as deep as every file the bundle was made of,
 * so paths resolved from it, `../..` to the package, stay true). `useCache: false` compiles without
 * the cache (the build, which then makes it from the returned script).
 */
export function runBundle(entryUrl: string, useCache = true): Script {
  let source: string;
  try {
    // The entry's `#!` line, kept by esbuild, is no JavaScript inside a function: a comment.
    source = readFileSync(bundleFile, "utf8").replace(/^#!/, "//");
  } catch (e) {
    throw new Error(`${bundleFile} is missing: run \`npm run build\``, { cause: e });
  }
  let cachedData: Buffer | undefined;
  if (useCache) {
    try {
      cachedData = readFileSync(codeCacheFile);
    } catch {
      // No cache: compile as usual.
    }
  }
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname, bundleEntryUrl) {${source}\n})`,
    { filename: bundleFile, ...(cachedData ? { cachedData } : {}) },
  );
  const module = { exports: {} };
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  run(module.exports, createRequire(bundleFile), module, bundleFile, binDir, entryUrl);
  return script;
}
