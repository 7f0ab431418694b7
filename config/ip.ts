// IPv4 arithmetic for config checks and for naming containers.

/** An IPv4 address as an unsigned 32-bit number. */
export function ipToInt(ip: string): number {
  const parts = ip.split(".").map(Number);
  return (((parts[0] ?? 0) << 24) | ((parts[1] ?? 0) << 16) | ((parts[2] ?? 0) << 8) | (parts[3] ?? 0)) >>> 0;
}

/** Back to dotted form. */
export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** A parsed CIDR such as 10.10.12.1/26. */
export interface Cidr {
  address: string;
  prefix: number;
  network: number;
  broadcast: number;
}

/** Parse "a.b.c.d/n". */
export function parseCidr(cidr: string): Cidr {
  const [address = "", p = "32"] = cidr.split("/");
  const prefix = Number(p);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const network = (ipToInt(address) & mask) >>> 0;
  return { address, prefix, network, broadcast: (network | (~mask >>> 0)) >>> 0 };
}

/** A subnet in CIDR form: 10.10.12.0/26 for 10.10.12.1/26. */
export function subnetOf(cidr: string): string {
  const c = parseCidr(cidr);
  return `${intToIp(c.network)}/${c.prefix}`;
}

/** Whether ip is a host address inside the subnet (not network, not broadcast). */
export function inSubnet(ip: string, c: Cidr): boolean {
  const n = ipToInt(ip);
  return c.prefix >= 31 ? n >= c.network && n <= c.broadcast : n > c.network && n < c.broadcast;
}

/**
 * The containers' addresses when containers.ipRange is not given: from the 10th address of
 * network.address's subnet (from the first when the lab does not fit after it), 51 of them
 * (10.10.12.10–10.10.12.60 for 10.10.12.1/26) or as many as `count` needs, within the subnet's
 * host addresses and never across the bridge's own address.
 */
export function defaultIpRange(address: string, count: number): [string, string] {
  const net = parseCidr(address);
  const gw = ipToInt(net.address);
  const lastHost = net.prefix >= 31 ? net.broadcast : net.broadcast - 1;
  const firstHost = net.prefix >= 31 ? net.network : net.network + 1;
  const span = (from: number) => Math.min(from + Math.max(50, count - 1), lastHost);
  // From the 10th address when the lab fits after it, else from the first.
  let start = net.network + 10 + count - 1 <= lastHost ? net.network + 10 : firstHost;
  let end = span(start);
  if (gw >= start && gw <= end) {
    // Before the bridge's address if the lab fits there, else after it.
    if (gw - start >= count) end = gw - 1;
    else {
      start = Math.min(gw + 1, lastHost);
      end = span(start);
    }
  }
  return [intToIp(start), intToIp(end)];
}
