// What `run up` (and `run spawn`) print at the end: the lab's containers (name, address, groups,
// state) and the commands to use it next.
import { bindText, limitsText } from "../config/binds.js";
import { containerSpecs } from "../config/containers.js";
import type { Config } from "../config/schema.js";
import type { ContainerState } from "../src/lab/state.js";

/** One row per container. */
export interface LabRow {
  name: string;
  ip: string;
  groups: string[];
  /** A lab across hosts: the host that holds it; unknown when that host gave no answer. */
  host?: string;
  state: "running" | "stopped" | "unknown";
  /** Host paths bound into it ("/srv/data:/data (ro)") and its limits ("memory 512M, cpus 1.5"). */
  binds?: string[];
  limits?: string;
}

export function labRows(c: Config, states: readonly ContainerState[]): LabRow[] {
  const specs = new Map(containerSpecs(c).map((s) => [s.name, s]));
  return states
    .filter((s) => s.ip !== undefined)
    .map((s) => {
      const spec = specs.get(s.name);
      const limits = spec ? limitsText(spec) : "";
      return {
        name: s.name,
        ip: s.ip ?? "",
        groups: [c.inventory.group, ...(spec?.groups ?? [])],
        state: s.leaderPid !== undefined ? "running" : "stopped",
        ...(spec?.binds.length ? { binds: spec.binds.map(bindText) } : {}),
        ...(limits ? { limits } : {}),
      };
    });
}

/** The table and the next commands; configArg is the -c the user gave (repeated in them). */
export function renderLabTable(c: Config, rows: readonly LabRow[], configArg?: string): string {
  // BINDS and LIMITS only when a container has some.
  const more = [
    ...(rows.some((r) => r.binds) ? [["BINDS", (r: LabRow) => (r.binds ?? []).join(" ")] as const] : []),
    ...(rows.some((r) => r.limits) ? [["LIMITS", (r: LabRow) => r.limits ?? ""] as const] : []),
  ];
  const hosts = rows.some((r) => r.host !== undefined);
  const head = ["NAME", "ADDRESS", ...(hosts ? ["HOST"] : []), "GROUPS", "STATE", ...more.map(([h]) => h)];
  const cells = rows.map((r) => [
    r.name,
    r.ip,
    ...(hosts ? [r.host ?? ""] : []),
    r.groups.join(","),
    r.state,
    ...more.map(([, f]) => f(r)),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]?.length ?? 0)));
  const line = (row: string[]) =>
    `  ${row
      .map((x, i) => x.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd()}`;
  const cfg = configArg ? ` -c ${configArg}` : "";
  const first = rows.find((r) => r.state === "running")?.name ?? rows[0]?.name ?? "NAME";
  return [
    `Lab ${c.lab}: ${rows.length} container${rows.length === 1 ? "" : "s"} on ${c.network.bridge} (${c.network.address})`,
    line(head),
    ...cells.map(line),
    "Next:",
    `  ansible -i ${c.inventory.file} -m ping ${c.inventory.group}`,
    `  aplspawn${cfg} ssh ${rows.length === 1 ? "" : first}`.trimEnd(),
    `  aplspawn${cfg} status`,
    `  sudo aplspawn${cfg} run down`,
    "",
  ].join("\n");
}
