// What Node itself can pull over HTTP on this machine: undici's request(), the body drained and
// thrown away (no write, no hash). getimage cannot be faster than this; bench/run.mjs prints it
// beside getimage and curl. Usage: node bench/undici-drain.mjs URL → {"ms":…,"bytes":…}
import { request } from "undici";

const t = performance.now();
const res = await request(process.argv[2]);
let bytes = 0;
for await (const chunk of res.body) bytes += chunk.length;
console.log(JSON.stringify({ ms: performance.now() - t, bytes }));
