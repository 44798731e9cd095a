import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { signingKeyFromSeed } from '@connect/crypto';
import { commitmentRowPlace, keyRing, localMasterKeys } from '@connect/db';
import {
  COMMITMENT_TYPE_DEFINED,
  COMMITMENT_TYPES_STREAM,
  type Commitment,
  commitmentStream,
  DEFAULT_TYPES,
  PROFILE_REGISTERED,
  profileStream,
} from '@connect/domain';
import { bodyCipher, type Ledger, openLedger, streamKeySubject } from '@connect/ledger';
import { activatedEvents } from '../../../test/support/commitment-events.ts';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';

export const ORIGIN = 'test.connect.local/ledger';
const KEY = signingKeyFromSeed(ORIGIN, new Uint8Array(32).fill(9));

/** A ledger sealing its bodies, on a fresh database; `dataDir` holds its master key. */
export async function projectorLedger(
  poolSize = 12,
): Promise<{ database: TestDatabase; ledger: Ledger; dataDir: string }> {
  const database = await createTestDatabase({ poolSize });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-projector-'));
  const keys = keyRing(database.pool, await localMasterKeys({ dataDir }), { listen: false });
  const ledger = await openLedger({
    pool: database.pool,
    db: database.db,
    origin: ORIGIN,
    key: KEY,
    cipher: bodyCipher(keys, { sealNew: true }),
  });
  await ledger.append({
    stream: COMMITMENT_TYPES_STREAM,
    expectedVersion: 'no_stream',
    actor: null,
    events: DEFAULT_TYPES.map((type) => ({ type: COMMITMENT_TYPE_DEFINED, data: { ...type } })),
  });
  return { database, ledger, dataDir };
}

export async function registerProfile(ledger: Ledger, displayName: string): Promise<string> {
  const userId = randomUUID();
  await ledger.append({
    stream: profileStream(userId),
    expectedVersion: 'no_stream',
    actor: userId,
    events: [{ type: PROFILE_REGISTERED, data: { userId, displayName } }],
  });
  return userId;
}

/** A commitment drafted by `creator` with `participant` invited, proposed and accepted: active. */
export async function activeCommitment(
  ledger: Ledger,
  creator: string,
  participant: string,
  title = 'Lend a bike',
) {
  const id = randomUUID();
  const result = await ledger.append({
    stream: commitmentStream(id),
    expectedVersion: 'no_stream',
    actor: creator,
    events: activatedEvents(creator, participant, title),
  });
  if (result.outcome !== 'appended') throw new Error(result.outcome);
  return id;
}

/** The projected commitments (their sealed states opened), oldest first. */
export async function projectedStates(database: TestDatabase, ledger: Ledger): Promise<Commitment[]> {
  const { rows } = await database.pool.query<{ id: string; sealed: Buffer }>(
    'select id, sealed from commitments order by created_at, id',
  );
  const states = await ledger.cipher.fields.open<Commitment>(
    rows.map((row) => ({
      subject: streamKeySubject(commitmentStream(row.id)),
      place: commitmentRowPlace(row.id),
      stored: row.sealed,
    })),
  );
  return states.map((state) => state as Commitment);
}
