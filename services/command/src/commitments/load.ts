// A commitment's state, replayed from its stream; and the commitment types, from theirs.

import type { Database } from '@connect/db';
import {
  COMMITMENT_TYPE_DEFINED,
  COMMITMENT_TYPES_STREAM,
  type Commitment,
  type CommitmentType,
  commitmentStream,
  commitmentTypeSchema,
  DEFAULT_TYPES,
  initialState,
  replayRecorded,
} from '@connect/domain';
import { type Ledger, type LedgerSource, readStream } from '@connect/ledger';
import type { Kysely } from 'kysely';

export async function loadCommitment(
  db: Kysely<Database>,
  source: LedgerSource,
  commitmentId: string,
): Promise<Commitment> {
  // The projector's replay too, so a stream with redacted entries loads as the read models show it.
  return replayRecorded(
    initialState(commitmentId),
    await readStream(db, source, commitmentStream(commitmentId)),
  );
}

export interface TypeRegistry {
  /** The types, reloaded from the ledger when `refresh` is set or a key is unknown. */
  get(refresh?: boolean): Promise<ReadonlyMap<string, CommitmentType>>;
  /** The types as the ledger holds them now, and their stream's version: what a new one appends after. */
  current(): Promise<{ types: ReadonlyMap<string, CommitmentType>; version: number }>;
}

export function typeRegistry(db: Kysely<Database>, source: LedgerSource): TypeRegistry {
  let cached: Map<string, CommitmentType> | undefined;
  const current = async () => {
    const entries = await readStream(db, source, COMMITMENT_TYPES_STREAM);
    const types = new Map<string, CommitmentType>();
    for (const entry of entries) {
      if (entry.type !== COMMITMENT_TYPE_DEFINED || !entry.data) continue;
      const type = commitmentTypeSchema.parse(entry.data);
      types.set(type.key, type);
    }
    cached = types;
    return { types, version: entries.at(-1)?.version ?? 0 };
  };
  return {
    async get(refresh = false) {
      return !cached || refresh ? (await current()).types : cached;
    },
    current,
  };
}

/** A new ledger starts with the default types, as ledger events. */
export async function ensureDefaultTypes(ledger: Ledger): Promise<void> {
  await ledger.append({
    stream: COMMITMENT_TYPES_STREAM,
    expectedVersion: 'no_stream',
    actor: null,
    events: DEFAULT_TYPES.map((type) => ({ type: COMMITMENT_TYPE_DEFINED, data: { ...type } })),
  });
}
