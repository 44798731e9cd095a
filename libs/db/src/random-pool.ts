import { randomBytes } from 'node:crypto';

/**
 * Random bytes handed out in slices of one CSPRNG draw of `drawSize` bytes: a draw per nonce or
 * salt was a visible cost where every request needs some. No byte is handed out twice, and a used
 * draw is never refilled (the next slice comes from a new one). Each pool draws buffers of its
 * own, so slices of secrets (salts) never share memory with public ones (nonces).
 */
export function randomPool(drawSize: number): (bytes: number) => Buffer {
  let pool = Buffer.alloc(0);
  let at = 0;
  return (bytes) => {
    if (bytes > drawSize) return randomBytes(bytes);
    if (at + bytes > pool.length) {
      pool = randomBytes(drawSize);
      at = 0;
    }
    at += bytes;
    return pool.subarray(at - bytes, at);
  };
}
