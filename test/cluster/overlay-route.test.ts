// A share's check for routes that overlap its subnet (src/net/routes.ts) passes over the /32s its
// overlay of routes made (proto ROUTES_PROTO, inside the subnet), and only those: found by the real
// check, a second `run up` of a lab across hosts with routes failed on them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ROUTES_PROTO } from "../../config/cluster.js";
import { ipToInt } from "../../config/ip.js";
import { type HostRoute, isOverlayRoute } from "../../src/net/routes.js";

const route = (ip: string, bits: number, protocol?: string): HostRoute => {
  const first = ipToInt(ip);
  return {
    first,
    last: first + 2 ** (32 - bits) - 1,
    dev: "eth0",
    label: ip,
    ...(protocol ? { protocol } : {}),
  };
};

test("the overlay's /32s inside the lab's subnet are the lab's own; any other route is not", () => {
  const mine = String(ROUTES_PROTO);
  assert.equal(isOverlayRoute(route("10.10.12.12", 32, mine), "10.10.12.1/26"), true);
  assert.equal(isOverlayRoute(route("10.10.12.12", 32, "static"), "10.10.12.1/26"), false);
  assert.equal(isOverlayRoute(route("10.10.12.12", 32), "10.10.12.1/26"), false);
  assert.equal(isOverlayRoute(route("10.10.12.0", 26, mine), "10.10.12.1/26"), false);
  assert.equal(isOverlayRoute(route("10.10.12.70", 32, mine), "10.10.12.1/26"), false);
});
