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

/** Whether ip is a host address inside the subnet (not network, not broadcast). */
export function inSubnet(ip: string, c: Cidr): boolean {
  const n = ipToInt(ip);
  return c.prefix >= 31 ? n >= c.network && n <= c.broadcast : n > c.network && n < c.broadcast;
}
