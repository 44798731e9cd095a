import type { SigningKey } from '@connect/crypto';
import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { type Appender, createAppender } from './append.ts';
import { type BodyCipher, clearBodies, type LedgerSource } from './body-cipher.ts';
import { ensureHead } from './head.ts';

export interface Ledger extends Appender, LedgerSource {
  origin: string;
  key: SigningKey;
  verifierKey: string;
}

/** Opens the ledger for appending: creates its head on first use and checks origin and key. */
export async function openLedger(deps: {
  pool: pg.Pool;
  db: Kysely<Database>;
  origin: string;
  key: SigningKey;
  /** How entry bodies are stored and read; in the clear when absent. */
  cipher?: BodyCipher;
  maxBatchEvents?: number;
}): Promise<Ledger> {
  const head = await ensureHead(deps.db, deps.origin, deps.key);
  return {
    ...createAppender(deps),
    origin: deps.origin,
    cipher: deps.cipher ?? clearBodies,
    key: deps.key,
    verifierKey: head.verifierKey,
  };
}
