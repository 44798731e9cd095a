// Fields at rest: sealed under their subject's key and bound to their row, read back in either
// form, and gone with the subject's key.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SealBroken } from '@connect/crypto/envelope';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';
import {
  clearFields,
  eraseDataKey,
  type FieldCipher,
  fieldCipher,
  type KeyRing,
  keyRing,
  localMasterKeys,
} from '../src/index.ts';

let database: TestDatabase;
let keys: KeyRing;
let sealing: FieldCipher;

beforeAll(async () => {
  database = await createTestDatabase();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'connect-fields-'));
  keys = keyRing(database.pool, await localMasterKeys({ dataDir }), { listen: false });
  sealing = fieldCipher(keys, { sealNew: true });
});
afterAll(async () => {
  await keys.close();
  await database.close();
});

const value = { terms: 'IBAN DE89 3704 0044 0532 0130 00', amount: { minor: 1250, currency: 'EUR' } };

describe('sealed fields', () => {
  test('open where they were sealed, and hold none of their plaintext', async () => {
    const [stored] = await sealing.seal([{ subject: 'commitment:a', place: 'commitments:a', value }]);
    expect(stored?.includes(Buffer.from('DE89'))).toBe(false);
    const [opened] = await sealing.open([
      { subject: 'commitment:a', place: 'commitments:a', stored: stored as Buffer },
    ]);
    expect(opened).toEqual(value);
  });

  test('moved to another row or read with another subject’s key, do not open', async () => {
    const [stored] = await sealing.seal([{ subject: 'commitment:b', place: 'commitments:b', value }]);
    await expect(
      sealing.open([{ subject: 'commitment:b', place: 'commitments:c', stored: stored as Buffer }]),
    ).rejects.toThrow(SealBroken);
    await sealing.seal([{ subject: 'commitment:c', place: 'commitments:c', value: 1 }]);
    await expect(
      sealing.open([{ subject: 'commitment:c', place: 'commitments:b', stored: stored as Buffer }]),
    ).rejects.toThrow(SealBroken);
  });

  test('kept once sealed or opened, yet refused once their stored bytes change', async () => {
    const field = { subject: 'commitment:e', place: 'commitments:e' };
    const [stored] = await sealing.seal([{ ...field, value }]);
    const altered = Buffer.from(stored as Buffer);
    altered[20] = (altered[20] as number) ^ 1; // a ciphertext byte, the tag kept
    await expect(sealing.open([{ ...field, stored: altered }])).rejects.toThrow(SealBroken);
    expect(await sealing.open([{ ...field, stored: stored as Buffer }])).toEqual([value]);
    const [opened] = await sealing.open<typeof value>([{ ...field, stored: stored as Buffer }]);
    (opened as typeof value).terms = 'changed by a caller';
    expect(await sealing.open([{ ...field, stored: stored as Buffer }])).toEqual([value]);
  });

  test('stored in the clear with encryption off, both kinds read; keys opened without do not', async () => {
    const clear = fieldCipher(keys, { sealNew: false });
    const [plain] = await clear.seal([{ subject: 'commitment:d', place: 'commitments:d', value }]);
    expect(JSON.parse((plain as Buffer).toString('utf8'))).toEqual(value);
    const [sealed] = await sealing.seal([{ subject: 'commitment:d', place: 'commitments:d', value: 'x' }]);
    expect(
      await clear.open([
        { subject: 'commitment:d', place: 'commitments:d', stored: plain as Buffer },
        { subject: 'commitment:d', place: 'commitments:d', stored: sealed as Buffer },
      ]),
    ).toEqual([value, 'x']);
    expect(await clearFields.open([{ subject: 'x', place: 'p', stored: plain as Buffer }])).toEqual([value]);
    await expect(clearFields.open([{ subject: 'x', place: 'p', stored: sealed as Buffer }])).rejects.toThrow(
      SealBroken,
    );
  });

  test('of an erased subject read as gone, and none are sealed for it again', async () => {
    const [stored] = await sealing.seal([
      { subject: 'user:gone', place: 'users:gone', value: 'me@example.org' },
    ]);
    const client = await database.pool.connect();
    try {
      await eraseDataKey(client, 'user:gone');
    } finally {
      client.release();
    }
    keys.forget('user:gone');
    expect(
      await sealing.open([{ subject: 'user:gone', place: 'users:gone', stored: stored as Buffer }]),
    ).toEqual([undefined]);
    expect(await sealing.seal([{ subject: 'user:gone', place: 'users:gone', value: 'again' }])).toEqual([
      null,
    ]);
  });
});
