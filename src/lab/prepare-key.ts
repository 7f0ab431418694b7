// `aplspawn test --reuse-prepare`: the name of the snapshot that keeps a lab's prepared state, a hash
// of what prepare depends on. The same inputs give the same name (the snapshot is reused); a change
// gives another (prepare runs again, and the test's cleanup purges the stale snapshot). The inputs:
// the prepare playbook's bytes and those of the files it names (relative names found as a file next
// to it or in its files/, templates/, tasks/, vars/ directories, and roles/NAME directories, whole,
// followed into the YAML files found), provision.args, the inventory's groups and vars, and each
// container's name, set, image, groups, vars, user and init. The image file itself is not hashed:
// a snapshot records the image it was made on, and one whose image changed is not reused
// (src/lab/snapshots.ts layersMisfit). Only reads.
import { createHash } from "node:crypto";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { parseAllDocuments } from "yaml";
import type { ContainerSpec } from "../../config/containers.js";
import type { Host } from "../host/host.js";

/** The prefix of the snapshots `aplspawn test --reuse-prepare` owns (the rest is the hash). */
export const PREPARE_SNAPSHOT_PREFIX = "aplspawn-prepare-";

/** Bounds on what is read: a role tree is small; a huge one is named by its files' sizes and times. */
const MAX_FILES = 2000;
const MAX_BYTES = 4 << 20;
const MAX_DEPTH = 8;

/** The relative names a YAML text holds (the values that could name a file or a role). */
function namesIn(text: string): string[] {
  const out = new Set<string>();
  const walk = (v: unknown): void => {
    if (typeof v === "string") {
      const s = v.trim();
      if (s && s.length < 256 && !isAbsolute(s) && !s.includes("{{") && !s.includes("\n")) out.add(s);
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") for (const x of Object.values(v)) walk(x);
  };
  try {
    for (const d of parseAllDocuments(text)) if ("toJS" in d) walk(d.toJS());
  } catch {
    // Not YAML (a template, a binary file): its bytes are hashed, it names nothing.
  }
  return [...out];
}

/** What of a lab's config prepare depends on (workflows/lab-params.ts prepareParams). */
export interface PrepareParams {
  /** provision.prepare: the playbook; none, no inputs. */
  prepare: string | undefined;
  /** provision.args. */
  args: readonly string[];
  /** The inventory section but its file. */
  inventory: Readonly<Record<string, unknown>>;
  containers: readonly Pick<
    ContainerSpec,
    "name" | "set" | "image" | "groups" | "vars" | "user" | "group" | "init"
  >[];
}

/** The hash of what prepare depends on, and the files it read (absolute, sorted). */
export async function prepareInputs(
  host: Host,
  p: PrepareParams,
): Promise<{ hash: string; files: string[] } | undefined> {
  const { prepare } = p;
  if (!prepare) return undefined;
  const files = new Map<string, string>();
  const fileDigest = async (path: string): Promise<string> => {
    const st = await host.fs.stat(path);
    if (!st?.isFile) return "";
    const bytes = st.size <= MAX_BYTES ? await host.fs.readBytes(path, 0, st.size) : `${st.size} ${st.mtime}`;
    return createHash("sha256").update(bytes).digest("hex");
  };
  const seen = new Set<string>();
  // A file: hashed; a YAML file: the names it holds, followed from its directory.
  const visit = async (path: string, depth: number): Promise<void> => {
    if (seen.has(path) || files.size >= MAX_FILES || depth > MAX_DEPTH) return;
    seen.add(path);
    const st = await host.fs.stat(path);
    if (st?.isDirectory) {
      for (const n of (await host.fs.readdir(path).catch(() => [] as string[])).sort())
        await visit(join(path, n), depth + 1);
      return;
    }
    if (!st?.isFile) return;
    files.set(path, await fileDigest(path));
    if (!/\.ya?ml$/.test(path) || st.size > MAX_BYTES) return;
    const dir = dirname(path);
    for (const n of namesIn(await host.fs.readFile(path).catch(() => ""))) {
      for (const sub of ["", "files", "templates", "tasks", "vars"]) {
        const p = resolve(dir, sub, n);
        if ((await host.fs.stat(p))?.isFile) await visit(p, depth + 1);
      }
      const role = resolve(dir, "roles", n);
      if (!n.includes("/") && (await host.fs.stat(role))?.isDirectory) await visit(role, depth + 1);
    }
  };
  const playbook = resolve(prepare);
  await visit(playbook, 0);
  const base = dirname(playbook);
  const key = {
    // By their place next to the playbook: the same tree elsewhere is the same input.
    files: [...files].map(([f, d]) => [relative(base, f), d]).sort(),
    args: p.args,
    inventory: p.inventory,
    containers: p.containers.map((s) => ({
      name: s.name,
      set: s.set ?? null,
      image: s.image ?? null,
      groups: s.groups,
      vars: s.vars,
      user: s.user,
      group: s.group,
      init: s.init,
    })),
  };
  return {
    hash: createHash("sha256").update(JSON.stringify(key)).digest("hex"),
    files: [...files.keys()].sort(),
  };
}

/** The snapshot name for these inputs: aplspawn's prefix and 16 hex digits of their hash. */
export const prepareSnapshotName = (hash: string): string => `${PREPARE_SNAPSHOT_PREFIX}${hash.slice(0, 16)}`;
