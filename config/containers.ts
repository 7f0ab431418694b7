// The lab's containers, derived from the config (no zod here: cheap to import).
import { intToIp, ipToInt, parseCidr } from "./ip.js";
import type { Config } from "./schema.js";

/** One container of the lab, derived from the config. */
export interface ContainerSpec {
  name: string;
  ip: string;
  index: number;
}

/** The lab's containers: names are prefix + the IP's last octet, IPs taken from ipRange in order. */
export function containerSpecs(c: Config): ContainerSpec[] {
  const gw = ipToInt(parseCidr(c.network.address).address);
  const out: ContainerSpec[] = [];
  for (let n = ipToInt(c.containers.ipRange[0]); out.length < c.containers.count; n++) {
    if (n === gw) continue;
    const ip = intToIp(n);
    out.push({ name: `${c.containers.prefix}${ip.split(".")[3]}`, ip, index: out.length });
  }
  return out;
}
