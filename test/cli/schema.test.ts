// The config's JSON Schema (`aplspawn schema`): what the CLI prints is the committed
// config/aplspawn.schema.json the default config points at; every key is described; the default
// config and the starter config are valid against it, and it is never stricter than the zod schema
// (every corpus config it refuses, the zod schema refuses too). What it cannot express (cross-field
// rules, refinements) is listed, so a change either way shows.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { test } from "node:test";
import { Ajv2020 } from "ajv/dist/2020.js";
import { parse } from "yaml";
import { schemaKeys } from "../../config/json-schema.js";
import { configSchema } from "../../config/schema.js";
import { renderStarter } from "../../src/lab/starter.js";
import { BAD_CONFIGS } from "../support/bad-configs.js";
import { runMain } from "../support/main-io.js";

const ROOT = resolve(import.meta.dirname, "../../..");
const committed = JSON.parse(readFileSync(resolve(ROOT, "config/aplspawn.schema.json"), "utf8")) as object;

function validator() {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  return ajv.compile(committed);
}

test("`aplspawn schema` prints the committed config/aplspawn.schema.json; the default config points at it", async () => {
  const { code, out } = await runMain(["schema"]);
  assert.equal(code, 0);
  assert.deepEqual(
    JSON.parse(out),
    committed,
    "config/aplspawn.schema.json is stale: node dist/cli/main.js schema > config/aplspawn.schema.json",
  );
  const yaml = readFileSync(resolve(ROOT, "config/aplspawn.yaml"), "utf8");
  assert.match(yaml.split("\n")[0]!, /^# yaml-language-server: \$schema=aplspawn\.schema\.json$/);
});

test("every key of the schema has a description, and the config reference (docs/configuration.md) names only keys it has", () => {
  const keys = schemaKeys(committed);
  assert.ok(keys.length > 60, `${keys.length} keys`);
  assert.deepEqual(
    keys.filter((k) => !k.description).map((k) => k.path),
    [],
    "keys without a description (config/descriptions.ts)",
  );
  const section = readFileSync(resolve(ROOT, "docs/configuration.md"), "utf8");
  const named = [...section.matchAll(/^\| `([a-zA-Z.]+)`(?:, `([a-zA-Z.]+)`)? \|/gm)].flatMap((m) =>
    [m[1], m[2]].filter((k): k is string => !!k),
  );
  assert.ok(named.length > 30, `${named.length} keys in docs/configuration.md`);
  const paths = new Set(keys.map((k) => k.path));
  assert.deepEqual(
    named.filter((k) => !paths.has(k)),
    [],
    "docs/configuration.md names keys the schema does not have",
  );
});

test("the default config and a starter config are valid against the JSON Schema", () => {
  const valid = validator();
  const starter = renderStarter({
    lab: "lab2",
    bridge: "nspawnd2",
    chain: "NSPAWN2",
    address: "10.10.13.1/26",
    prefix: "lab2-",
  } as Parameters<typeof renderStarter>[0]);
  for (const [name, text] of [
    ["config/aplspawn.yaml", readFileSync(resolve(ROOT, "config/aplspawn.yaml"), "utf8")],
    ["starter", starter],
  ] as const) {
    assert.ok(valid(parse(text)), `${name}: ${JSON.stringify(valid.errors)}`);
    assert.ok(configSchema.safeParse(parse(text)).success, `${name} fits the zod schema`);
  }
});

// Corpus configs the zod schema refuses but the JSON Schema cannot: a refinement (a rule in code)
// or a check across keys. Listed by name, so a change either way fails the test.
const BEYOND_JSON_SCHEMA = [
  "lab with ..",
  "workdir relative",
  "workdir with ..",
  "host port out of range",
  "machinesDir relative",
  "image url ftp",
  "image url not a URL",
  "checksums URL bad",
  "workdir with a line break",
  "inventory file with ..",
  "workdir is /",
  "workdir is /etc",
  "workdir is /usr/ (normalized)",
  "workdir is //var//lib (normalized)",
  "machinesDir is /var",
  "workdir with a template",
  "inventory file with a template",
  "machinesDir with %",
  "sshKey with %",
  "inventory file with %",
  "workdir is /var/lib/ (normalized)",
  "workdir is /tmp",
  "machinesDir is /",
  "inventory file with a line break",
  "chain a built-in chain",
  "chain the nat table's built-in",
  "bridge named like an Ethernet device",
  "bridge named like a predictable NIC name",
  "bridge lo",
  "a bind path with a colon, and one with ..",
];

test("the JSON Schema is never stricter than the zod schema, and refuses what the zod schema refuses but its refinements", () => {
  const valid = validator();
  const beyond: string[] = [];
  let refused = 0;
  for (const [name, text] of BAD_CONFIGS) {
    let doc: unknown;
    try {
      doc = parse(text);
    } catch {
      continue; // not YAML: neither schema gets to see it
    }
    const byZod = !configSchema.safeParse(doc ?? {}).success;
    const byJson = !valid(doc ?? {});
    if (byJson) {
      refused++;
      assert.ok(
        byZod,
        `${name}: the JSON Schema refuses what the zod schema accepts: ${JSON.stringify(valid.errors)}`,
      );
    } else if (byZod) beyond.push(name);
  }
  assert.ok(refused > 40, `only ${refused} corpus configs refused by the JSON Schema`);
  assert.deepEqual(beyond, BEYOND_JSON_SCHEMA);
});
