// The query API's operations for the OpenAPI document (libs/http builds it).
import type { Operation } from '@connect/http';
import { z } from 'zod';
import { listQuery } from './commitments/routes.ts';

const readHeaders = [
  {
    name: 'Connect-Min-Index',
    description: 'wait (bounded) until the read models include this ledger index',
  },
];
const readErrors = {
  '400': 'Invalid parameter; `errors` names it',
  '401': 'No or bad access token',
  '503': 'Connect-Min-Index not reached in time (Retry-After)',
};

const party = z.object({
  userId: z.string(),
  displayName: z.string().nullable(),
  role: z.enum(['creator', 'participant', 'witness']),
  response: z.enum(['invited', 'accepted', 'declined']),
});
const document = z.object({
  documentId: z.uuid(),
  name: z.string(),
  mediaType: z.string(),
  size: z.number().int(),
  sha256: z.string(),
  version: z.number().int(),
});
const commitment = z.object({
  id: z.uuid(),
  type: z.string(),
  title: z.string(),
  description: z.string(),
  terms: z.string(),
  amount: z.object({ minor: z.number().int(), currency: z.string() }).nullable(),
  dueAt: z.string().nullable(),
  status: z.string(),
  overdue: z.boolean(),
  version: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
  parties: z.array(party),
  documents: z.array(document),
});
const historyEvent = z.object({
  index: z.number().int(),
  version: z.number().int(),
  type: z.string(),
  at: z.string(),
  actor: z.object({ userId: z.string(), displayName: z.string().nullable() }).nullable(),
  summary: z.string(),
  changes: z.record(z.string(), z.unknown()).nullable(),
  leafHash: z.string(),
  redacted: z.boolean(),
});

const proofQuery = (names: string[]) =>
  z.object(Object.fromEntries(names.map((name) => [name, z.number().int().min(0)])));

export const queryOperations: Operation[] = [
  {
    method: 'get',
    path: '/v1/commitments',
    summary: 'The caller’s commitments, newest first (filters; cursor pagination)',
    auth: true,
    query: listQuery,
    headers: readHeaders,
    response: z.object({ items: z.array(commitment), nextCursor: z.string().nullable() }),
    responses: { '200': 'A page', ...readErrors },
  },
  {
    method: 'get',
    path: '/v1/commitments/{id}',
    summary: 'One commitment with its parties and documents (ETag: its version)',
    auth: true,
    headers: readHeaders,
    response: commitment,
    responses: {
      '200': 'The commitment',
      '304': 'Not modified',
      '404': 'Not there or not visible',
      ...readErrors,
    },
  },
  {
    method: 'get',
    path: '/v1/commitments/{id}/history',
    summary: 'Every event of a commitment: who, what, when, its ledger index and leaf hash',
    auth: true,
    headers: readHeaders,
    response: z.object({ commitmentId: z.uuid(), events: z.array(historyEvent) }),
    responses: { '200': 'The history', '404': 'Not there or not visible', ...readErrors },
  },
  {
    method: 'get',
    path: '/v1/commitment-types',
    summary: 'The commitment types',
    auth: true,
    headers: readHeaders,
    responses: { '200': 'The types', ...readErrors },
  },
  {
    method: 'get',
    path: '/v1/ledger/checkpoint',
    summary: 'The latest signed checkpoint (text/plain, C2SP signed note)',
    responses: { '200': 'The checkpoint' },
  },
  {
    method: 'get',
    path: '/v1/ledger/key',
    summary: 'The ledger origin and verifier key',
    responses: { '200': 'The key' },
  },
  {
    method: 'get',
    path: '/v1/ledger/proofs/inclusion',
    summary: 'Inclusion proof of an entry in a tree size',
    query: proofQuery(['index', 'treeSize']),
    responses: { '200': 'The proof', '400': 'Bad or out-of-range parameter, named' },
  },
  {
    method: 'get',
    path: '/v1/ledger/proofs/consistency',
    summary: 'Consistency proof between two tree sizes',
    query: proofQuery(['from', 'to']),
    responses: { '200': 'The proof', '400': 'Bad or out-of-range parameter, named' },
  },
  {
    method: 'get',
    path: '/v1/ledger/entries/{index}',
    summary: 'One ledger entry: header, data, salt, leaf hash (parties of its commitment only)',
    auth: true,
    headers: readHeaders,
    responses: { '200': 'The entry', '404': 'No such entry, or not yours to read', ...readErrors },
  },
  {
    method: 'get',
    path: '/v1/commitments/{id}/receipt',
    summary:
      'The receipt bundle: checkpoint, key, every event with its inclusion proof, the state (parties only)',
    auth: true,
    headers: readHeaders,
    responses: { '200': 'Receipt bundle (LEDGER.md)', '404': 'Not there or not visible', ...readErrors },
  },
  {
    method: 'post',
    path: '/v1/admin/ledger/audit',
    summary: 'Run the full ledger audit (admins): every hash, subtree and checkpoint recomputed',
    auth: true,
    responses: {
      '200': '{ok, treeSize, …} naming the first bad entry',
      '403': 'Not an admin',
      '409': 'Already running',
    },
  },
  {
    method: 'post',
    path: '/v1/ledger/verify',
    summary: 'Verify a receipt bundle, an entry with its proof, or two checkpoints; names every check',
    responses: { '200': '{valid, checks}', '400': 'Not a receipt, entry or checkpoint pair' },
  },
];
