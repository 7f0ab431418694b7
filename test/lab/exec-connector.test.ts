// The connector exec runs in a container's PID namespace is machine code kept as hex beside its
// source: the hex must be exactly what the source assembles to, so a reader can trust the listing.
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { CONNECTOR_ASM, CONNECTOR_HEX } from "../../src/lab/exec-connector.js";
import { EXEC_HELPER } from "../../src/lab/exec-helper.js";
import { tempDir } from "../support/ns.js";

const tools = async () =>
  (await execa("as", ["--version"], { reject: false })).exitCode === 0 &&
  (await execa("objcopy", ["--version"], { reject: false })).exitCode === 0;

test("the connector's hex is what its source assembles to (GNU as)", async (t) => {
  if (!(await tools())) return t.skip("needs GNU as and objcopy (binutils)");
  const d = await tempDir("aplspawn-connector-");
  try {
    await writeFile(join(d.path, "c.s"), CONNECTOR_ASM);
    await execa("as", ["--64", "-o", join(d.path, "c.o"), join(d.path, "c.s")]);
    await execa("objcopy", ["-O", "binary", "-j", ".text", join(d.path, "c.o"), join(d.path, "c.bin")]);
    assert.equal((await readFile(join(d.path, "c.bin"))).toString("hex"), CONNECTOR_HEX);
    assert.ok(EXEC_HELPER.includes(CONNECTOR_HEX), "the helper carries the connector");
  } finally {
    await d.cleanup();
  }
});
