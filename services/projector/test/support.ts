import { randomUUID } from 'node:crypto';
import { signingKeyFromSeed } from '@connect/crypto';
import {
  COMMITMENT_TYPE_DEFINED,
  COMMITMENT_TYPES_STREAM,
  commitmentStream,
  DEFAULT_TYPES,
  PROFILE_REGISTERED,
  profileStream,
} from '@connect/domain';
import { type Ledger, openLedger } from '@connect/ledger';
import { createTestDatabase, type TestDatabase } from '../../../test/support/database.ts';

export const ORIGIN = 'test.connect.local/ledger';
const KEY = signingKeyFromSeed(ORIGIN, new Uint8Array(32).fill(9));

export async function projectorLedger(poolSize = 12): Promise<{ database: TestDatabase; ledger: Ledger }> {
  const database = await createTestDatabase({ poolSize });
  const ledger = await openLedger({ pool: database.pool, db: database.db, origin: ORIGIN, key: KEY });
  await ledger.append({
    stream: COMMITMENT_TYPES_STREAM,
    expectedVersion: 'no_stream',
    actor: null,
    events: DEFAULT_TYPES.map((type) => ({ type: COMMITMENT_TYPE_DEFINED, data: { ...type } })),
  });
  return { database, ledger };
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
    events: [
      {
        type: 'CommitmentDrafted',
        schema: 2,
        data: {
          type: 'personal',
          creatorId: creator,
          title,
          description: '',
          terms: 'Return it by Friday',
          amount: null,
          dueAt: null,
        },
      },
      { type: 'PartyInvited', data: { userId: participant, role: 'participant' } },
      { type: 'CommitmentProposed', data: {} },
      { type: 'InvitationAccepted', data: { userId: participant } },
      { type: 'CommitmentActivated', data: {} },
    ],
  });
  if (result.outcome !== 'appended') throw new Error(result.outcome);
  return id;
}
