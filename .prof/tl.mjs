import { readFileSync } from "node:fs";

for (const f of process.argv.slice(2)) {
  const ev = readFileSync(f, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return null;
      }
    })
    .filter(Boolean);
  const t0 = Date.parse(ev[0].ts);
  console.log(`# ${f}`);
  for (const e of ev) {
    if (e.event === "task" && e.state === "running") continue;
    const t = Date.parse(e.ts) - t0;
    console.log(
      String(t).padStart(6),
      e.event,
      e.id ?? "",
      e.state ?? "",
      e.durationMs ?? "",
      e.container ?? "",
      (e.title ?? e.message ?? "").slice(0, 70),
    );
  }
}
