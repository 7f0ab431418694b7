// The config's JSON Schema, generated from the zod schema (the one source of its keys, types,
// defaults and patterns) with a description for every key (config/descriptions.ts). What `aplspawn
// schema` prints and config/aplspawn.schema.json holds, for editors (yaml-language-server) and CI.
// Cross-field rules (addresses in the subnet, unique names, …) are not expressible in it: `aplspawn
// validate` checks those.
import { z } from "zod";
import { describeKey } from "./descriptions.js";
import { configSchema } from "./schema.js";

type Node = { [k: string]: unknown };

/** The config's JSON Schema (draft 2020-12), what a config file may hold as written. */
export function configJsonSchema(): Node {
  const s = z.toJSONSchema(configSchema, { io: "input", target: "draft-2020-12" }) as Node;
  describe(s, "");
  return {
    $schema: s.$schema,
    title: "aplspawn lab config",
    description: "A lab of systemd-nspawn containers (aplspawn run up). Every key is optional.",
    ...s,
  };
}

// Sets each property's description from its key path; "[]" for a list's items.
function describe(n: unknown, path: string): void {
  if (!n || typeof n !== "object") return;
  const node = n as Node;
  for (const [k, v] of Object.entries((node.properties as Node | undefined) ?? {})) {
    const p = path ? `${path}.${k}` : k;
    const text = describeKey(p);
    if (text && v && typeof v === "object") (v as Node).description = text;
    describe(v, p);
  }
  if (node.items && typeof node.items === "object" && !Array.isArray(node.items))
    describe(node.items, `${path}[]`);
  for (const alt of [...((node.anyOf as unknown[]) ?? []), ...((node.oneOf as unknown[]) ?? [])])
    describe(alt, path);
}

/** Every key path of a JSON Schema's properties ("[]" for a list's items). */
export function schemaKeys(n: unknown, path = ""): { path: string; description?: string }[] {
  if (!n || typeof n !== "object") return [];
  const node = n as Node;
  const out: { path: string; description?: string }[] = [];
  for (const [k, v] of Object.entries((node.properties as Node | undefined) ?? {})) {
    const p = path ? `${path}.${k}` : k;
    const d = (v as Node).description;
    out.push({ path: p, ...(typeof d === "string" ? { description: d } : {}) }, ...schemaKeys(v, p));
  }
  if (node.items && typeof node.items === "object" && !Array.isArray(node.items))
    out.push(...schemaKeys(node.items, `${path}[]`));
  for (const alt of [...((node.anyOf as unknown[]) ?? []), ...((node.oneOf as unknown[]) ?? [])])
    out.push(...schemaKeys(alt, path));
  return out;
}
