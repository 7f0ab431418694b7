// A config's problems as data, from where they are found to the edge: a check says which key and
// what is wrong (a Problem); the reader of the file adds where that key is written (a Diagnostic);
// the CLI prints them (formatDiagnostic) or gives them as they are (validate --json).
import { UsageError } from "../src/errors.js";
import type { Config } from "./schema.js";

/** A key path in a config, as zod and the yaml library take it: ["containers", "sets", 1, "image"]. */
export type KeyPath = readonly (string | number)[];

/** A problem as a check finds it: the key it is about ([] for none) and what is wrong there. */
export interface Problem {
  at: KeyPath;
  message: string;
}

/** A key path as a config's reader writes it: containers.sets.1.image. */
export const dotted = (at: KeyPath): string => at.join(".");

/**
 * One problem of a config: its key path ("" when none), what is wrong, where (1-based), the value
 * written there (as YAML read it, JSON-quoted when a string) and a hint, when there are.
 */
export interface Diagnostic {
  path: string;
  message: string;
  line?: number;
  column?: number;
  value?: string;
  hint?: string;
}

/** A problem as one line: "path: message (line L, column C: value; hint)". */
export function formatDiagnostic(d: Diagnostic): string {
  const shown = [d.value, d.hint].filter((s) => s !== undefined);
  const where =
    d.line !== undefined
      ? ` (line ${d.line}, column ${d.column}${d.value !== undefined ? `: ${shown.join("; ")}` : d.hint ? `; ${d.hint}` : ""})`
      : d.hint
        ? ` (${d.hint})`
        : "";
  return `${d.path ? `${d.path}: ` : ""}${d.message}${where}`;
}

/** A config file that failed to load: each problem as data (a usage error: exit 2). */
export class ConfigError extends UsageError {
  override name = "ConfigError";
  constructor(
    readonly file: string,
    readonly items: readonly Diagnostic[],
    /** The config without the keys found wrong (when it parses so), for checks that come later. */
    readonly partial?: Config,
    /** The key paths found wrong (or left out to read the rest). */
    readonly wrong: readonly KeyPath[] = [],
  ) {
    super();
  }

  /** The problems in words, made from `items` when it is read (by the CLI's one catch). */
  override get message(): string {
    return `Invalid config ${this.file}:\n${this.problems.map((p) => `  - ${p}`).join("\n")}`;
  }

  /** Each problem as a line of text. */
  get problems(): string[] {
    return this.items.map(formatDiagnostic);
  }
}
