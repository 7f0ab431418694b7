#!/usr/bin/env node
// The `aplspawn` command (package.json's bin): runs the bundled CLI with its code cache (see
// bundle-loader.ts). dist/cli/main.js is the same CLI unbundled.
import { runBundle } from "./bundle-loader.js";

runBundle(import.meta.url);
