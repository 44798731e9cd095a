// Which addresses a webhook may go to: public unicast only, so an integrator's URL cannot reach
// the service's own network (loopback, private ranges, link-local cloud metadata, …).
import { isIP } from 'node:net';

type Range = readonly [prefix: bigint, bits: number, name: string];

const v4 = (text: string): bigint =>
  text.split('.').reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n);

function v6(text: string): bigint {
  let address = text.toLowerCase().split('%')[0] ?? '';
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (dotted?.[1]) {
    const n = v4(dotted[1]);
    address = `${address.slice(0, -dotted[1].length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((n, group) => (n << 16n) | BigInt(Number.parseInt(group || '0', 16)), 0n);
}

const V4_RANGES: Range[] = [
  [v4('0.0.0.0'), 8, 'unspecified ("this network")'],
  [v4('10.0.0.0'), 8, 'private'],
  [v4('100.64.0.0'), 10, 'shared (carrier-grade NAT)'],
  [v4('127.0.0.0'), 8, 'loopback'],
  [v4('169.254.0.0'), 16, 'link-local'],
  [v4('172.16.0.0'), 12, 'private'],
  [v4('192.0.0.0'), 24, 'reserved (IETF protocol assignments)'],
  [v4('192.0.2.0'), 24, 'documentation'],
  [v4('192.168.0.0'), 16, 'private'],
  [v4('198.18.0.0'), 15, 'reserved (benchmarking)'],
  [v4('198.51.100.0'), 24, 'documentation'],
  [v4('203.0.113.0'), 24, 'documentation'],
  [v4('224.0.0.0'), 4, 'multicast'],
  [v4('240.0.0.0'), 4, 'reserved (and broadcast)'],
];

const V6_RANGES: Range[] = [
  [v6('::'), 128, 'unspecified'],
  [v6('::1'), 128, 'loopback'],
  [v6('fc00::'), 7, 'unique-local'],
  [v6('fe80::'), 10, 'link-local'],
  [v6('fec0::'), 10, 'site-local'],
  [v6('ff00::'), 8, 'multicast'],
  [v6('2001:db8::'), 32, 'documentation'],
  [v6('100::'), 64, 'discard-only'],
];

/** IPv6 forms that carry an IPv4 address a packet ends up at: mapped, compatible, NAT64, 6to4. */
function embeddedV4(n: bigint): bigint | undefined {
  if (n >> 32n === 0xffffn) return n & 0xffffffffn; // ::ffff:a.b.c.d
  if (n >> 32n === 0n) return n & 0xffffffffn; // ::a.b.c.d (deprecated)
  if (n >> 32n === v6('64:ff9b::') >> 32n) return n & 0xffffffffn; // NAT64
  if (n >> 112n === 0x2002n) return (n >> 80n) & 0xffffffffn; // 6to4
  return undefined;
}

const within = (n: bigint, width: number, [prefix, bits]: Range): boolean =>
  n >> BigInt(width - bits) === prefix >> BigInt(width - bits);

/** Why an IP address is refused as a webhook destination, or undefined if it is public. */
export function refusedAddress(address: string): string | undefined {
  const family = isIP(address.split('%')[0] ?? '');
  if (family === 4) {
    const n = v4(address);
    return V4_RANGES.find((range) => within(n, 32, range))?.[2];
  }
  if (family === 6) {
    const n = v6(address);
    const range = V6_RANGES.find((r) => within(n, 128, r));
    if (range) return range[2];
    const inner = embeddedV4(n);
    if (inner === undefined) return undefined;
    return V4_RANGES.find((r) => within(inner, 32, r))?.[2];
  }
  return 'not an IP address';
}
