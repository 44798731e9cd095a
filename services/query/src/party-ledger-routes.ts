// What a party may fetch from the ledger itself: one entry (GET /v1/ledger/entries/:index) and
// the receipt bundle of a commitment (GET /v1/commitments/:id/receipt). Whether the caller is a
// party, or shares a commitment with someone, is the read models' answer, under row-level
// security like every other read.
import type { Authenticate } from '@connect/auth';
import type { SigningKey } from '@connect/crypto';
import type { Database } from '@connect/db';
import {
  COMMITMENT_TYPES_STREAM,
  commitmentIdOf,
  commitmentStream,
  profileStream,
  rolesUserOf,
} from '@connect/domain';
import { HttpProblem, parseWith, problem } from '@connect/http';
import {
  type BodyCipher,
  buildReceipt,
  type Entry,
  type Queryable,
  type ReceiptDeps,
  readEntry,
  type TreeNodeCache,
} from '@connect/ledger';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { idParam, notVisible } from './commitments/routes.ts';
import { readConsistency } from './consistency.ts';
import { parseLedgerIndex } from './ledger-index.ts';
import type { ProjectedIndex } from './projected-index.ts';
import { type Caller, callerFromClaims, readAs } from './reader.ts';
import { partyProfileStreams, replayReceipt } from './receipt-state.ts';

export interface PartyLedgerDeps {
  db: Kysely<Database>;
  pool: Queryable;
  reader: Kysely<Database>;
  origin: string;
  cipher: BodyCipher;
  verifierKey: string;
  /** The ledger's key: it signs each receipt's stream head. */
  key: SigningKey;
  /** Node hashes already read, shared with the proof endpoints: receipts read only those it lacks. */
  nodes?: TreeNodeCache;
  authenticate: Authenticate;
  projectedIndex: ProjectedIndex;
  minIndexWaitMs?: number;
}

async function canSeeCommitment(reader: Kysely<Database>, caller: Caller, id: string): Promise<boolean> {
  const row = await readAs(reader, caller, (db) =>
    db.selectFrom('commitments').select('id').where('id', '=', id).executeTakeFirst(),
  );
  return row !== undefined;
}

const PROFILE_PREFIX = profileStream('');
const profileUserOf = (stream: string) =>
  stream.startsWith(PROFILE_PREFIX) ? stream.slice(PROFILE_PREFIX.length) : undefined;

/** Whether the caller is a party to a commitment this user is a party to. */
async function sharesCommitment(reader: Kysely<Database>, caller: Caller, userId: string): Promise<boolean> {
  // Row-level security shows the caller only the party rows of commitments they can see.
  const row = await readAs(reader, caller, (db) =>
    db
      .selectFrom('commitment_parties')
      .select('user_id')
      .where('user_id', '=', userId)
      .limit(1)
      .executeTakeFirst(),
  );
  return row !== undefined;
}

/**
 * Who may read an entry: parties for a commitment's; anyone signed in for types; for a profile,
 * the user, whoever shares a commitment with them (so no one can walk the list of every user);
 * the user for their own roles; admins and auditors for anything.
 */
async function mayRead(reader: Kysely<Database>, caller: Caller, entry: Entry): Promise<boolean> {
  if (caller.isAdmin) return true;
  const commitment = commitmentIdOf(entry.stream);
  if (commitment) return canSeeCommitment(reader, caller, commitment);
  if (entry.stream === COMMITMENT_TYPES_STREAM) return true;
  if (rolesUserOf(entry.stream) === caller.userId) return true;
  const profileOf = profileUserOf(entry.stream);
  if (profileOf === undefined) return false;
  return profileOf === caller.userId || sharesCommitment(reader, caller, profileOf);
}

/** A commitment's receipt bundle at the latest checkpoint; the caller must already be known to be a party. */
export async function commitmentReceipt(deps: ReceiptDeps, id: string) {
  const bundle = await buildReceipt(deps, commitmentStream(id), { profiles: partyProfileStreams });
  // The state exactly the bundled events replay to (later events are not in this checkpoint).
  return { ...bundle, state: replayReceipt(bundle.entries, id) };
}

export async function partyLedgerRoutes(app: FastifyInstance, deps: PartyLedgerDeps): Promise<void> {
  const consistent = readConsistency(deps.projectedIndex, deps.minIndexWaitMs);
  const callerOf = async (request: Parameters<Authenticate>[0]): Promise<Caller> => {
    const claims = await deps.authenticate(request);
    return callerFromClaims(claims);
  };

  app.get('/v1/ledger/entries/:index', async (request, reply) => {
    const caller = await callerOf(request);
    const index = parseLedgerIndex((request.params as { index: string }).index, 'path.index');
    await consistent(request, reply);
    const entry = await readEntry(deps.db, deps, index);
    if (!entry || !(await mayRead(deps.reader, caller, entry))) {
      throw new HttpProblem(problem(404, `No entry ${index}, or not one you may read.`));
    }
    return entry;
  });

  app.get('/v1/commitments/:id/receipt', async (request, reply) => {
    const caller = await callerOf(request);
    const { id } = parseWith(idParam, request.params, 'path');
    await consistent(request, reply);
    if (!(await canSeeCommitment(deps.reader, caller, id))) throw notVisible(id);
    return commitmentReceipt(deps, id);
  });
}
