// Documents in the read models: terms and evidence told apart.
import { randomUUID } from 'node:crypto';
import { commitmentStream } from '@connect/domain';
import type { Ledger, NewEvent } from '@connect/ledger';
import type { FastifyBaseLogger } from 'fastify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TestDatabase } from '../../../test/support/database.ts';
import { startProjector } from '../src/runner.ts';
import { ORIGIN, projectedStates, projectorLedger, registerProfile } from './support.ts';

const quiet = { info() {}, warn() {}, error() {} } as unknown as FastifyBaseLogger;

let database: TestDatabase;
let ledger: Ledger;
let ana: string;
let ben: string;

beforeAll(async () => {
  ({ database, ledger } = await projectorLedger());
  ana = await registerProfile(ledger, 'Ana');
  ben = await registerProfile(ledger, 'Ben');
});
afterAll(async () => {
  await ledger.drain();
  await database.close();
});

const file = (documentId: string, name: string, sha: string) => ({
  documentId,
  name,
  mediaType: 'application/pdf',
  size: 10,
  sha256: sha.repeat(64),
  version: 1,
});

async function append(id: string, expectedVersion: number | 'no_stream', actor: string, events: NewEvent[]) {
  const result = await ledger.append({ stream: commitmentStream(id), expectedVersion, actor, events });
  if (result.outcome !== 'appended') throw new Error(result.outcome);
}

/** A draft by Ana with the loan agreement attached (stream version 2). */
async function draftWithTerms(id: string, termsId: string) {
  await append(id, 'no_stream', ana, [
    {
      type: 'CommitmentDrafted',
      schema: 2,
      data: {
        type: 'personal',
        creatorId: ana,
        title: 'Lend Ben 200 EUR',
        description: '',
        terms: '',
        amount: null,
        dueAt: null,
      },
    },
    { type: 'DocumentAttached', data: file(termsId, 'loan.pdf', 'a') },
  ]);
}

/** Ben joins, and once it is active attaches a receipt as evidence (stream version 8). */
async function activeWithEvidence(id: string, evidenceId: string) {
  await append(id, 2, ana, [
    { type: 'PartyInvited', data: { userId: ben, role: 'participant' } },
    { type: 'CommitmentProposed', data: {} },
  ]);
  await append(id, 4, ben, [
    { type: 'InvitationAccepted', data: { userId: ben } },
    { type: 'CommitmentActivated', data: {} },
    { type: 'FulfilmentClaimed', data: { userId: ben } },
    { type: 'EvidenceAttached', data: { ...file(evidenceId, 'receipt.pdf', 'b'), userId: ben } },
  ]);
}

async function project() {
  const projector = startProjector({
    pool: database.pool,
    origin: ORIGIN,
    cipher: ledger.cipher,
    log: quiet,
  });
  const { tree_size } = await database.db
    .selectFrom('ledger_head')
    .select('tree_size')
    .executeTakeFirstOrThrow();
  await expect
    .poll(
      async () => {
        const { rows } = await database.pool.query<{ n: number }>(
          "select last_index::int as n from projection_checkpoints where projection = 'commitments'",
        );
        return rows[0]?.n;
      },
      { timeout: 10_000, interval: 25 },
    )
    .toBe(tree_size - 1);
  await projector.close();
}

/** A commitment's document rows, named from its sealed state. */
async function documents(id: string) {
  const { rows } = await database.pool.query(
    'select document_id, version, purpose, attached_by, latest from commitment_documents where commitment_id = $1',
    [id],
  );
  const state = (await projectedStates(database, ledger)).find((s) => s.id === id);
  const names = new Map(state?.documents.map((d) => [`${d.documentId}:${d.version}`, d.name]));
  return rows
    .map(({ document_id, version, ...row }) => ({ name: names.get(`${document_id}:${version}`), ...row }))
    .sort((a, b) => String(a.name).localeCompare(String(b.name)));
}

it('projects each document with its purpose and who attached it', async () => {
  const id = randomUUID();
  await draftWithTerms(id, randomUUID());
  await activeWithEvidence(id, randomUUID());
  await project();
  expect(await documents(id)).toEqual([
    { name: 'loan.pdf', purpose: 'terms', attached_by: ana, latest: true },
    { name: 'receipt.pdf', purpose: 'evidence', attached_by: ben, latest: true },
  ]);
});
