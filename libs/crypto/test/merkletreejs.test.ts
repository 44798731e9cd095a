// An independent cross-check: merkletreejs, set up as RFC 6962 (0x00/0x01 prefixes, an odd
// node promoted unhashed), must agree with our roots for every size.
import { createHash } from 'node:crypto';
import { MerkleTree } from 'merkletreejs';
import { expect, test } from 'vitest';
import { leafHash, rootFromLeaves, toBase64 } from '../src/index.ts';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();

function rfc6962Root(leaves: Buffer[]): Buffer {
  const tree = new MerkleTree(leaves, (data: Buffer) => data, {
    hashLeaves: false,
    sortPairs: false,
    concatenator: (pair: Buffer[]) => sha256(Buffer.concat([Buffer.from([0x01]), ...pair])),
  } as never);
  return tree.getRoot();
}

test('roots agree with merkletreejs for sizes 1..300', () => {
  const data = Array.from({ length: 300 }, (_, i) => Buffer.from(`entry ${i}`));
  const leaves = data.map((d) => sha256(Buffer.concat([Buffer.from([0x00]), d])));
  for (let size = 1; size <= 300; size++) {
    const ours = rootFromLeaves(data.slice(0, size).map((d) => leafHash(d)));
    expect(toBase64(ours)).toBe(rfc6962Root(leaves.slice(0, size)).toString('base64'));
  }
});
