// The host's routes, as a lab's subnet sees them: which would collide with it.
import { ROUTES_PROTO } from "../../config/cluster.js";
import { ipToInt, parseCidr } from "../../config/ip.js";
import type { HostContext } from "../host/host.js";

/** An IPv4 route's destination as a range of addresses, and where it goes. */
export interface HostRoute {
  first: number;
  last: number;
  dev: string | undefined;
  /** Who made it, as `ip -j` says: "kernel", "static", "165". */
  protocol?: string;
  /** "10.10.12.0/26 dev br0 table main" */
  label: string;
}

/**
 * IPv4 routes of every table to a destination (not default, not broadcast or the like; in the local
 * table, the host's own addresses). None when `ip` cannot say.
 */
export async function hostRoutes(ctx: HostContext): Promise<HostRoute[]> {
  const r = await ctx.host.exec("ip", ["-4", "-j", "route", "show", "table", "all"], {
    allowFail: true,
    readOnly: true,
    signal: ctx.signal,
  });
  if (r.exitCode !== 0) return [];
  const out: HostRoute[] = [];
  for (const route of JSON.parse(r.stdout || "[]") as {
    dst?: string;
    dev?: string;
    table?: string;
    type?: string;
    protocol?: string;
  }[]) {
    if (!route.dst || route.dst === "default") continue;
    if (route.type && !["unicast", "local"].includes(route.type)) continue;
    if (route.table === "local" && route.type !== "local") continue;
    const [ip, len] = route.dst.split("/");
    if (!ip || ip.includes(":")) continue;
    const bits = len === undefined ? 32 : Number(len);
    const first = bits === 0 ? 0 : (ipToInt(ip) & ((~0 << (32 - bits)) >>> 0)) >>> 0;
    out.push({
      first,
      last: first + 2 ** (32 - bits) - 1,
      dev: route.dev,
      ...(route.protocol ? { protocol: route.protocol } : {}),
      label: `${route.dst} dev ${route.dev ?? "?"}${route.table ? ` table ${route.table}` : ""}`,
    });
  }
  return out;
}

/** Whether a route's destination shares an address with the subnet. */
export function routeOverlaps(r: HostRoute, subnet: string): boolean {
  const net = parseCidr(subnet);
  return r.first <= net.broadcast && net.network <= r.last;
}

/**
 * A route an overlay of routes made for its lab (cluster.overlay routes: a /32 of the lab's subnet
 * through a peer host, proto ROUTES_PROTO): the lab's own, no other network's.
 */
export function isOverlayRoute(r: HostRoute, subnet: string): boolean {
  const net = parseCidr(subnet);
  return (
    r.protocol === String(ROUTES_PROTO) &&
    r.first === r.last &&
    net.network <= r.first &&
    r.last <= net.broadcast
  );
}

/**
 * Routes to destinations that overlap the lab's subnet, on other interfaces than its bridge: the
 * lab's traffic would go astray, or take over a network the host reaches. The lab's own routes to
 * its containers on other hosts (isOverlayRoute) are not such.
 */
export async function overlappingRoutes(
  ctx: HostContext,
  s: { address: string; bridge: string },
): Promise<string[]> {
  return (await hostRoutes(ctx))
    .filter((r) => r.dev !== s.bridge && routeOverlaps(r, s.address) && !isOverlayRoute(r, s.address))
    .map((r) => r.label);
}
