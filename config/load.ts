// Reading a config: YAML → zod → cross-field checks, every problem reported at once with its key path.
// Pure (text in, Config out): finding the file and checking the files it names is the CLI's.

import { isDeepStrictEqual } from "node:util";
import {
  type Document,
  isAlias,
  isMap,
  isNode,
  isScalar,
  LineCounter,
  type Node,
  parseDocument,
  visit,
  type YAMLError,
} from "yaml";
import { type core, z } from "zod";
import { bindsProblems, limitsProblems } from "./binds.js";
import { containerSpecs } from "./containers.js";
import { ConfigError, type Diagnostic, dotted, type KeyPath, type Problem } from "./diagnostic.js";
import { isPulled, pulledName } from "./images.js";
import { inSubnet, ipToInt, parseCidr } from "./ip.js";
import { imagePath } from "./paths.js";
import { type Config, completeConfig, configSchema, type ImageSection } from "./schema.js";

/** Parse and validate config text; throws ConfigError listing every problem. */
export function parseConfig(text: string, file: string): Config {
  const lines = new LineCounter();
  // prettyErrors: false, the library's messages without the place (which is ours to give).
  const doc = parseDocument(text, { uniqueKeys: true, lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) throw new ConfigError(file, yamlProblems(doc.errors, lines));
  const unreadable = unreadableNode(doc);
  if (unreadable)
    throw new ConfigError(file, [{ ...unreadable.problem, ...placeOf(lines, unreadable.node) }]);
  const raw: unknown = doc.contents === null ? {} : doc.toJS();
  if (doc.contents !== null && !isMap(doc.contents))
    throw new ConfigError(file, [
      {
        path: "top level",
        message: "must be a mapping of keys (lab, network, image, containers, inventory, …)",
      },
    ]);
  const parsed = configSchema.safeParse(raw, { error: inOurWords });
  if (!parsed.success) {
    const issues = parsed.error.issues;
    const schemaProblems = issues.flatMap((issue) => issueDiagnostics(issue, doc, lines));
    // Every phase in one run: the checks across keys and of the files named run on the config
    // without the keys found wrong (their defaults in their place), and report what does not
    // concern those keys.
    const rest = parseWithout(raw, issues);
    const partial = rest && completeConfig(rest.data);
    const wrong = rest?.wrong ?? wrongPaths(issues);
    const more =
      rest && partial
        ? crossChecks(partial, rest.data.containers)
            .filter((p) => !wrong.some((w) => concerns(p.at, w) || readsWrong(p.at, w)))
            .map((p) => located(doc, lines, p))
        : [];
    throw new ConfigError(file, byPlace([...schemaProblems, ...more]), partial, wrong);
  }
  const config = completeConfig(parsed.data);
  const problems = crossChecks(config, parsed.data.containers);
  if (problems.length > 0)
    throw new ConfigError(file, byPlace(problems.map((p) => located(doc, lines, p))), config);
  return config;
}

/**
 * Problems found after parsing (the files a config names, the host it runs on), each placed where
 * its key is written in the config's text.
 */
export function placeProblems(text: string, problems: readonly Problem[]): Diagnostic[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  return problems.map((p) => located(doc, lines, p));
}

// The library's errors in our words, each place once (it reports some twice).
const YAML_WORDS: Partial<Record<YAMLError["code"], string>> = {
  MULTIPLE_DOCS:
    'a config is one YAML document, and a second one starts here: remove this "---" and what follows, or put it in a file of its own',
  TAB_AS_INDENT: "a tab indents this line: YAML indents with spaces only",
  DUPLICATE_KEY: "this key is written twice in one mapping: keys must be unique",
  BLOCK_AS_IMPLICIT_KEY:
    'a key cannot start here: the line is indented deeper than the keys above it, or a value holds ": " and needs quotes',
  MULTILINE_IMPLICIT_KEY:
    'a key cannot start here: the line is indented deeper than the keys above it, or a value holds ": " and needs quotes',
};

function yamlProblems(errors: readonly YAMLError[], lines: LineCounter): Diagnostic[] {
  const seen = new Set<string>();
  const out: Diagnostic[] = [];
  for (const e of errors) {
    const { line, col } = lines.linePos(e.pos[0]);
    if (seen.has(`${line}:${col}`)) continue;
    seen.add(`${line}:${col}`);
    let words = YAML_WORDS[e.code];
    if (!words && e.code === "BAD_INDENT" && e.message.startsWith("All mapping items"))
      words = "this key is not in line with the keys above it: keys of one mapping start at the same column";
    out.push({
      path: "",
      message: `YAML syntax: ${words ?? e.message}`,
      line,
      column: col,
    });
  }
  return out;
}

// What parses as YAML but cannot be read as a config: an alias to no anchor, a key that is a list
// or a mapping.
function unreadableNode(doc: Document): { node: Node; problem: Diagnostic } | undefined {
  let found: { node: Node; problem: Diagnostic } | undefined;
  visit(doc, {
    Alias(_, node) {
      if (!node.resolve(doc)) {
        found = {
          node,
          problem: {
            path: "",
            message: `YAML syntax: *${node.source} names no anchor (&${node.source}) above it`,
          },
        };
        return visit.BREAK;
      }
      return undefined;
    },
    Pair(_, pair) {
      if (isNode(pair.key) && !isScalar(pair.key) && !isAlias(pair.key)) {
        found = {
          node: pair.key,
          problem: { path: "", message: "YAML syntax: a key must be a name, not a list or a mapping" },
        };
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found;
}

function placeOf(lines: LineCounter, node: Node | undefined): { line?: number; column?: number } {
  if (!node?.range) return {};
  const { line, col } = lines.linePos(node.range[0]);
  return { line, column: col };
}

/**
 * Where in the file an issue is (the value at its path; for an unknown key, that key), what is
 * written there, and a hint for what YAML made of it: yes/no/on/off are strings in YAML 1.2,
 * which is what a config is read as; an unquoted number is a number.
 */
function whereIs(
  doc: Document,
  lines: LineCounter,
  issue: core.$ZodIssue,
  unknownKey?: string,
): Omit<Diagnostic, "path" | "message"> {
  let node: unknown = doc.getIn(issue.path, true);
  if (unknownKey !== undefined) {
    const parent = issue.path.length ? doc.getIn(issue.path, true) : doc.contents;
    node = isMap(parent)
      ? parent.items.find((i) => isScalar(i.key) && String(i.key.value) === unknownKey)?.key
      : undefined;
  }
  // A key that is missing: where the mapping that should hold it is.
  let missing = false;
  for (let up = issue.path.length - 1; !isNode(node) && up >= 0; up--) {
    node = up === 0 ? doc.contents : doc.getIn(issue.path.slice(0, up), true);
    missing = true;
  }
  if (!isNode(node) || !node.range) return {};
  const place = placeOf(lines, node);
  if (!isScalar(node) || missing || unknownKey !== undefined) return place;
  const v = node.value;
  const value =
    typeof v === "string" ? JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v) : String(v);
  const hint = hintFor(issue, v);
  return { ...place, value, ...(hint ? { hint } : {}) };
}

// What to write instead, when what YAML read is a common slip.
function hintFor(issue: core.$ZodIssue, v: unknown): string | undefined {
  if (issue.code !== "invalid_type") return undefined;
  const expected = String(issue.expected);
  if (typeof v === "string" && expected === "boolean" && /^(yes|no|on|off|y|n)$/i.test(v))
    return `YAML 1.2 reads ${v} as a string: write ${/^(yes|on|y)$/i.test(v) ? "true" : "false"}`;
  if (typeof v === "number" && expected === "string") {
    // A host port is a protocol and a port.
    if (issue.path.length === 3 && issue.path[0] === "network" && issue.path[1] === "hostPorts")
      return `write tcp/${v} or udp/${v}`;
    return "YAML read it as a number: put it in quotes";
  }
  if (
    typeof v === "string" &&
    (expected === "number" || expected === "int") &&
    v.trim() !== "" &&
    !Number.isNaN(Number(v))
  )
    return "YAML read it as a string: leave out the quotes";
  return undefined;
}

/** The key paths the issues name (for an unknown key, that key's). */
function wrongPaths(issues: readonly core.$ZodIssue[]): KeyPath[] {
  return issues.flatMap((i) =>
    i.code === "unrecognized_keys" ? i.keys.map((k) => [...keyPathOf(i.path), k]) : [keyPathOf(i.path)],
  );
}

// zod's path as a config's: a config has no symbol keys (its keys are YAML's).
const keyPathOf = (path: readonly PropertyKey[]): KeyPath =>
  path.map((k) => (typeof k === "number" ? k : String(k)));

/**
 * The config parsed without the values found wrong, and the paths left out. A value left out takes
 * its default; where leaving it out is wrong too (a required key, an item of a list or a tuple),
 * what holds it is left out instead, up to a key that has a default.
 */
function parseWithout(
  raw: unknown,
  issues: readonly core.$ZodIssue[],
): { data: z.infer<typeof configSchema>; wrong: KeyPath[] } | undefined {
  const wrong = wrongPaths(issues);
  const same = (a: KeyPath, b: KeyPath) => a.length === b.length && a.every((k, i) => k === b[i]);
  for (let round = 0; round < 16; round++) {
    const r = configSchema.safeParse(without(raw, wrong));
    if (r.success) return { data: r.data, wrong };
    for (const q of wrongPaths(r.error.issues)) {
      const drop = wrong.some((w) => same(w, q)) ? q.slice(0, -1) : q;
      if (drop.length === 0) return undefined;
      if (!wrong.some((w) => same(w, drop))) wrong.push(drop);
    }
  }
  return undefined;
}

/** A deep copy of a YAML value without the values at `paths` (a list's item becomes undefined). */
function without(raw: unknown, paths: readonly KeyPath[]): unknown {
  const copy = structuredClone(raw) as Record<PropertyKey, unknown>;
  for (const path of paths) {
    if (path.length === 0) return {};
    let node: unknown = copy;
    for (const k of path.slice(0, -1)) node = (node as Record<PropertyKey, unknown> | undefined)?.[k];
    if (node && typeof node === "object") {
      const last = path.at(-1)!;
      if (Array.isArray(node) && typeof last === "number") node[last] = undefined;
      else delete (node as Record<PropertyKey, unknown>)[last];
    }
  }
  return copy;
}

/** Whether `at` is the key `outer` or a key inside it. */
const within = (at: KeyPath, outer: KeyPath): boolean =>
  at.length >= outer.length && outer.every((k, i) => String(k) === String(at[i]));

/** Whether a problem about `at` is about a key found wrong, or one inside or above it. */
export function concerns(at: KeyPath, wrong: KeyPath): boolean {
  if (at.length === 0 || wrong.length === 0) return false;
  return within(at, wrong) || within(wrong, at);
}

// What a check across keys reads besides the key it names. When one of those was found wrong (left
// out, its default in its place), the check would judge that default: it says nothing then.
const CONTAINER_KEYS: KeyPath[] = [
  ["containers", "ipRange"],
  ["containers", "count"],
  ["containers", "prefix"],
  ["containers", "sets"],
];
const READS: [KeyPath, KeyPath[]][] = [
  [["containers"], [["network", "address"], ...CONTAINER_KEYS]],
  [["network", "forwards"], CONTAINER_KEYS],
  [
    ["inventory", "children"],
    [
      ["inventory", "group"],
      ["containers", "sets"],
    ],
  ],
  [["containers", "sets"], [["inventory", "templates"]]],
];

function readsWrong(at: KeyPath, wrong: KeyPath): boolean {
  return READS.some(([key, reads]) => within(at, key) && reads.some((r) => within(wrong, r)));
}

/** Problems in file order (by the line and column they name); those without a place last. */
export function byPlace(problems: readonly Diagnostic[]): Diagnostic[] {
  const at = (d: Diagnostic) =>
    d.line !== undefined ? d.line * 1e6 + (d.column ?? 0) : Number.MAX_SAFE_INTEGER;
  return problems
    .map((d, i) => ({ d, i, k: at(d) }))
    .sort((a, b) => a.k - b.k || a.i - b.i)
    .map((x) => x.d);
}

/**
 * zod's messages in the voice of ours ("must be …"), for the checks that carry no message of
 * their own; anything else keeps zod's.
 */
function inOurWords(issue: core.$ZodRawIssue): string | undefined {
  const what: Record<string, string> = {
    boolean: "true or false",
    number: "a number",
    int: "a whole number",
    string: "a string",
    array: "a list",
    object: "a mapping of keys",
    tuple: "a list",
    record: "a mapping of keys",
  };
  switch (issue.code) {
    case "invalid_type": {
      if (issue.input === undefined) return "required";
      const expected = String(issue.expected);
      return `must be ${what[expected] ?? expected}`;
    }
    case "too_small":
      if (issue.origin === "array")
        return `must have at least ${issue.minimum} item${issue.minimum === 1 ? "" : "s"}`;
      if (issue.origin === "string")
        return `must be at least ${issue.minimum} character${issue.minimum === 1 ? "" : "s"}`;
      return `must be at least ${issue.minimum}${issue.inclusive === false ? " (exclusive)" : ""}`;
    case "too_big":
      if (issue.origin === "array") return `must have at most ${issue.maximum} items`;
      if (issue.origin === "string") return `must be at most ${issue.maximum} characters`;
      return `must be at most ${issue.maximum}`;
    case "invalid_value":
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "invalid_format":
      if (issue.format === "ipv4") return "must be an IPv4 address, e.g. 10.10.12.10";
      return undefined;
    default:
      return undefined;
  }
}

/** A problem found across keys or in the files named, placed where its key is written. */
function located(doc: Document, lines: LineCounter, { at, message }: Problem): Diagnostic {
  const node = at.length ? doc.getIn(at, true) : undefined;
  return { path: dotted(at), message, ...(isNode(node) ? placeOf(lines, node) : {}) };
}

function keyPath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? "top level" : dotted(keyPathOf(path));
}

// One issue as diagnostics placed in the file (an unknown key's issue names every unknown key).
function issueDiagnostics(issue: core.$ZodIssue, doc: Document, lines: LineCounter): Diagnostic[] {
  if (issue.code === "unrecognized_keys") {
    const known = knownKeys(issue.path);
    return issue.keys.map((k) => {
      const hint = closest(k, known);
      const path = issue.path.length ? `${keyPath(issue.path)}.${k}` : k;
      const message = `unknown key${hint ? ` (did you mean "${hint}"?)` : ""}`;
      return { path, message, ...whereIs(doc, lines, issue, k) };
    });
  }
  return [{ path: keyPath(issue.path), message: issue.message, ...whereIs(doc, lines, issue) }];
}

/** The keys the schema allows at a path (for "did you mean"). */
function knownKeys(path: readonly PropertyKey[]): string[] {
  let s: z.ZodType = configSchema;
  for (const p of path) {
    s = unwrap(s);
    if (!(s instanceof z.ZodObject)) return [];
    const next = (s.shape as Record<string, z.ZodType>)[String(p)];
    if (!next) return [];
    s = next;
  }
  s = unwrap(s);
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

function unwrap(s: z.ZodType): z.ZodType {
  let cur = s;
  for (let i = 0; i < 5; i++) {
    const inner = (cur as unknown as { def: { innerType?: z.ZodType } }).def.innerType;
    if (!inner) break;
    cur = inner;
  }
  return cur;
}

function closest(word: string, options: string[]): string | undefined {
  let best: { o: string; d: number } | undefined;
  for (const o of options) {
    const d = levenshtein(word.toLowerCase(), o.toLowerCase());
    if (!best || d < best.d) best = { o, d };
  }
  return best && best.d <= Math.max(2, Math.floor(word.length / 3)) ? best.o : undefined;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** given: the containers section as written (what completeConfig filled in is not). */
function crossChecks(c: Config, given: z.infer<typeof configSchema>["containers"]): Problem[] {
  // containers.ipRange was not given: it follows network.address.
  const derived = given.ipRange === undefined;
  const problems: Problem[] = [...setProblems(c, given), ...bindsProblems(c), ...limitsProblems(c)];
  const add = (at: KeyPath, message: string) => problems.push({ at, message });
  for (const [i, s] of (c.containers.sets ?? []).entries())
    if (s.hosts !== undefined && !c.cluster)
      add(["containers", "sets", i, "hosts"], "pins the set to a group of hosts: it needs a cluster section");
  const net = parseCidr(c.network.address);
  if (net.prefix > 30)
    add(["network", "address"], "the prefix must be /30 or shorter to leave room for containers");
  if (ipToInt(net.address) === net.network || ipToInt(net.address) === net.broadcast)
    add(
      ["network", "address"],
      `${net.address} is the subnet's network or broadcast address, not a host address`,
    );
  // First the images: the containers (below) are known only when every image URL names a file.
  const images = [
    ...imageProblems(c.image, ["image"]),
    ...(c.containers.sets ?? []).flatMap((s, i) =>
      s.image ? imageProblems(s.image, ["containers", "sets", i, "image"]) : [],
    ),
  ];
  problems.push(...images, ...sharedImageProblems(c));
  const [first, last] = c.containers.ipRange;
  for (const [i, ip] of c.containers.ipRange.entries())
    if (!inSubnet(ip, net))
      add(["containers", "ipRange", i], `${ip} is not a host address in ${c.network.address}`);
  const a = ipToInt(first);
  const b = ipToInt(last);
  if (a > b) add(["containers", "ipRange"], `${first} comes after ${last}`);
  else {
    const gw = ipToInt(net.address);
    if (gw >= a && gw <= b) add(["containers", "ipRange"], `contains the bridge address ${net.address}`);
    const size = b - a + 1 - (gw >= a && gw <= b ? 1 : 0);
    if (c.containers.count > size)
      add(
        ["containers", c.containers.sets ? "sets" : "count"],
        `${c.containers.count} containers do not fit in ipRange ${first}–${last} (${size} addresses${derived ? `, what ${c.network.address} leaves; give a larger subnet or containers.ipRange` : ""})`,
      );
  }
  if (problems.length === 0) {
    const names = containerSpecs(c).map((s) => s.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup && !c.containers.sets)
      add(["containers", "ipRange"], `two containers would both be named ${dup} (names use the last octet)`);
    const seen = new Set<string>();
    for (const [i, f] of c.network.forwards.entries()) {
      if (!names.includes(f.container))
        add(
          ["network", "forwards", i, "container"],
          `no container named ${f.container} in this lab; containers: ${names.join(", ")}`,
        );
      const key = `${f.proto}/${f.hostPort}`;
      if (seen.has(key)) add(["network", "forwards", i], `host port ${key} is forwarded twice`);
      seen.add(key);
    }
  }
  problems.push(...addressProblems(net));
  // The image store is <workdir>/images, the index of labs /var/lib/aplspawn/labs, the user id
  // ranges /var/lib/aplspawn/userns: a lab of such a name would share (and its undo delete) them.
  const reserved: Record<string, string> = {
    images: "the workdir's image store",
    labs: "aplspawn's index of labs (/var/lib/aplspawn/labs)",
    userns: "aplspawn's record of user id ranges (/var/lib/aplspawn/userns)",
  };
  const taken = reserved[c.lab];
  if (taken) add(["lab"], `"${c.lab}" is the name of ${taken}`);
  return problems;
}

const CONTAINER_NAME = /^[a-z][a-z0-9-]{0,39}$/;
const TEMPLATING = /\{\{|\{%|\{#/;

// The sets' names and their containers' (unique, fit for a machine name), and inventory.children.
/** Every string in a JSON value (a key that templates too), with its key path. */
function strings(v: unknown, at: KeyPath): [KeyPath, string][] {
  if (typeof v === "string") return [[at, v]];
  if (Array.isArray(v)) return v.flatMap((x, i) => strings(x, [...at, i]));
  if (v && typeof v === "object")
    return Object.entries(v).flatMap(([k, x]) => [
      ...(TEMPLATING.test(k) ? ([[[...at, k], k]] as [KeyPath, string][]) : []),
      ...strings(x, [...at, k]),
    ]);
  return [];
}

function setProblems(c: Config, given: z.infer<typeof configSchema>["containers"]): Problem[] {
  const problems: Problem[] = [];
  const add = (at: KeyPath, message: string) => problems.push({ at, message });
  const sets = c.containers.sets ?? [];
  if (sets.length > 0) {
    if (given.count !== undefined)
      add(
        ["containers", "count"],
        "not with containers.sets (each set has its count; the lab's is their sum)",
      );
    if (given.prefix !== undefined)
      add(
        ["containers", "prefix"],
        "not with containers.sets (each set names its containers by its pattern)",
      );
  }
  // A var Ansible would template runs on the controller (lookup('pipe', …) runs a command there):
  // only when the config says it means that.
  if (!c.inventory.templates)
    for (const [i, s] of sets.entries())
      for (const [at, text] of strings(s.vars, ["containers", "sets", i, "vars"]))
        if (TEMPLATING.test(text))
          add(
            at,
            `holds Ansible templating ("{{", "{%" or "{#"), which Ansible evaluates on the controller (a lookup('pipe', …) runs a command there); set inventory.templates: true if that is meant`,
          );
  const made = new Map<string, string>();
  for (const [i, s] of sets.entries()) {
    const first = sets.findIndex((o) => o.name === s.name);
    if (first !== i) add(["containers", "sets", i, "name"], `${s.name} is the name of set ${first} too`);
    for (let n = 1; n <= s.count; n++) {
      const name = s.pattern.replace("%d", String(n));
      if (!CONTAINER_NAME.test(name)) {
        add(["containers", "sets", i, "pattern"], `makes ${name}, more than 40 characters`);
        break;
      }
      const other = made.get(name);
      if (other !== undefined)
        add(
          ["containers", "sets", i],
          `two containers would both be named ${name} (sets ${other} and ${s.name})`,
        );
      made.set(name, s.name);
    }
  }
  for (const [i, s] of sets.entries())
    if (made.has(s.name))
      add(
        ["containers", "sets", i, "name"],
        `${s.name} is also a container's name (--only ${s.name} would mean both)`,
      );
  const groups = new Set([
    c.inventory.group,
    ...sets.flatMap((s) => s.groups),
    ...Object.keys(c.inventory.children),
  ]);
  for (const [parent, kids] of Object.entries(c.inventory.children))
    for (const k of kids)
      if (!groups.has(k))
        add(["inventory", "children", parent], `no group named ${k}; groups: ${[...groups].join(", ")}`);
  for (const cycle of cycles(c.inventory.children)) {
    const [g] = cycle as [string];
    add(
      ["inventory", "children", g],
      `${g} would be a child of itself${cycle.length > 1 ? ` (${[...cycle, g].join(" → ")})` : ""}`,
    );
  }
  return problems;
}

// Every cycle of groups, each once (from its first group in sort order), at most `max` of them.
function cycles(children: Record<string, string[]>, max = 20): string[][] {
  const found = new Map<string, string[]>();
  for (const start of Object.keys(children).sort()) {
    const walk = (path: string[]): void => {
      for (const k of children[path.at(-1)!] ?? []) {
        if (found.size >= max) return;
        if (k === start) found.set(path.join(" "), [...path]);
        else if (k > start && !path.includes(k)) walk([...path, k]);
      }
    };
    walk([start]);
  }
  return [...found.values()];
}

// Subnets a lab must not take: they are the host's own or special (RFC 6890).
const SPECIAL: [string, number, string][] = [
  ["0.0.0.0", 8, '"this network"'],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"],
];

function addressProblems(net: ReturnType<typeof parseCidr>): Problem[] {
  const at = ["network", "address"];
  if (net.prefix < 8) return [{ at, message: "the prefix must be /8 or longer" }];
  for (const [base, len, what] of SPECIAL) {
    const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
    if ((ipToInt(net.address) & mask) >>> 0 === ipToInt(base))
      return [{ at, message: `${net.address} is a ${what} address (${base}/${len}), not one for a lab` }];
  }
  return [];
}

// Two sets that name one image file must agree on everything about it: it is got and attached once.
function sharedImageProblems(c: Config): Problem[] {
  const problems: Problem[] = [];
  // A URL imageProblems refuses names no file, nor does half an image server's source.
  const fileOf = (section: ImageSection) => {
    if ((section.server === undefined) !== (section.alias === undefined)) return undefined;
    try {
      return imagePath(c, section);
    } catch {
      return undefined;
    }
  };
  const seen = new Map<string, { at: KeyPath; section: ImageSection }>();
  const main = fileOf(c.image);
  if (main !== undefined) seen.set(main, { at: ["image"], section: c.image });
  for (const [i, s] of (c.containers.sets ?? []).entries()) {
    const path = s.image && fileOf(s.image);
    if (!s.image || path === undefined) continue;
    const at = ["containers", "sets", i, "image"];
    const first = seen.get(path);
    if (!first) seen.set(path, { at, section: s.image });
    else if (!isDeepStrictEqual(sourceKeys(first.section), sourceKeys(s.image)))
      problems.push({
        at,
        message: isPulled(s.image)
          ? `names the image ${pulledName(s.image)} as ${dotted(first.at)} does, but differs from it (insecure, maxSize or another key): one image is pulled once; give both the same keys`
          : `names the file ${path} as ${dotted(first.at)} does, but differs from it (checksum, build recipe or another key): one file is one image; give it a url of its own`,
      });
  }
  // A pinned loop device holds one image.
  const pins = new Map<string, string>();
  for (const [path, { at, section }] of seen) {
    const pin = section.loopDevice;
    if (pin === undefined) continue;
    const other = pins.get(pin);
    if (other !== undefined && other !== path)
      problems.push({
        at: [...at, "loopDevice"],
        message: `${pin} is pinned for ${other} too; one device holds one image`,
      });
    pins.set(pin, path);
  }
  return problems;
}

// What makes an image what it is: a pulled one does not read url (a set's is the config's default).
const sourceKeys = (s: ImageSection): Partial<ImageSection> => {
  if (!isPulled(s)) return s;
  const { url: _url, ...rest } = s;
  return rest;
};

// An image server's image (image.server + image.alias): verified by the SHA-256 its index gives, so
// a file image's keys do not apply, and neither does another source.
function serverProblems(image: ImageSection, at: KeyPath): Problem[] {
  const problems: Problem[] = [];
  // A key of this image: its path, and as the messages name it.
  const k = (key: string) => [...at, key];
  const named = (key: string) => dotted(k(key));
  if (image.server === undefined)
    problems.push({ at: k("alias"), message: `names an image on ${named("server")}, which is not set` });
  if (image.alias === undefined)
    problems.push({
      at: k("server"),
      message: `needs ${named("alias")}, the image's alias on it (e.g. debian/12)`,
    });
  const others = (["oci", "sha256", "checksums", "checksumsKeyring", "build"] as const).filter(
    (key) => image[key],
  );
  if (others.length)
    problems.push({
      at: k("server"),
      message: `${others.map(named).join(", ")} ${others.length > 1 ? "do" : "does"} not apply to an image server's image (give one image source)`,
    });
  if (image.server !== undefined) {
    const server = (message: string) => problems.push({ at: k("server"), message });
    const u = new URL(image.server);
    if (u.protocol === "file:") server("must be an https:// URL of an image server");
    else if (u.protocol === "http:" && !image.insecure)
      server(
        `over plain http anyone on the way can rewrite the index with its checksums: use https, or ${named("insecure")}: true`,
      );
    if (u.username || u.password)
      server("credentials in a URL would be printed and journaled: leave them out");
    if (u.search || u.hash) server("must not have a query or fragment");
  }
  return problems;
}

// What an image's URLs turn into on the host: a file name in the store (http) or a path (file).
function imageProblems(image: ImageSection, at: KeyPath): Problem[] {
  if (image.server !== undefined || image.alias !== undefined) return serverProblems(image, at);
  const problems: Problem[] = [];
  const k = (key: string) => [...at, key];
  const named = (key: string) => dotted(k(key));
  if (image.oci) {
    // Verified by the digests of the registry's manifest and blobs: the keys of a file image do not apply.
    const others = (["sha256", "checksums", "checksumsKeyring", "build"] as const).filter(
      (key) => image[key],
    );
    if (others.length)
      problems.push({
        at: k("oci"),
        message: `${others.map(named).join(", ")} apply to a file image, not an OCI image`,
      });
    return problems;
  }
  if (image.sha256 && image.checksums)
    problems.push({ at, message: `give ${named("sha256")} or ${named("checksums")}, not both` });
  const url = (message: string) => problems.push({ at: k("url"), message });
  const u = new URL(image.url);
  const lastPart = u.pathname.split("/").pop() ?? "";
  let decoded: string | undefined;
  try {
    decoded = decodeURIComponent(u.protocol === "file:" ? u.pathname : lastPart);
  } catch {
    url(`malformed percent-encoding in ${JSON.stringify(u.pathname)}`);
  }
  if (decoded !== undefined && u.protocol === "file:") {
    if (decoded.split("/").includes("..") || decoded.includes("\0"))
      url(`the file path ${JSON.stringify(decoded)} must not contain ".." or NUL`);
  } else if (decoded !== undefined && (["", ".", ".."].includes(decoded) || /[/\0]/.test(decoded)))
    url(`must end in a file name (the image's name in the store), not ${JSON.stringify(decoded)}`);
  for (const [key, text] of [
    [["url"], image.url],
    [["checksums"], image.checksums],
    [["build", "mirror"], image.build?.mirror],
  ] as const) {
    const withCreds = text !== undefined && URL.canParse(text) && new URL(text);
    if (withCreds && (withCreds.username || withCreds.password))
      problems.push({
        at: [...at, ...key],
        message: "credentials in a URL would be printed and journaled: leave them out",
      });
  }
  if (u.protocol !== "file:" && !image.sha256 && !image.checksums && !image.insecure)
    problems.push({
      at,
      message: `a downloaded image must be verified: give ${named("sha256")} or ${named("checksums")} (or ${named("insecure")}: true to accept it unverified)`,
    });
  if (image.checksums?.startsWith("http:") && !image.checksumsKeyring && !image.insecure)
    problems.push({
      at: k("checksums"),
      message: `over plain http anyone on the way can rewrite the checksums with the image: use https, ${named("sha256")}, a signature (${named("checksumsKeyring")}), or ${named("insecure")}: true`,
    });
  if (image.checksumsKeyring && !image.checksums)
    problems.push({
      at: k("checksumsKeyring"),
      message: `checks the signature of ${named("checksums")}, which is not set`,
    });
  return problems;
}
