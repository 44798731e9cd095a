// The query API's operations for the OpenAPI document (libs/http builds it).
import { CREATED_BY } from '@connect/domain';
import type { Operation } from '@connect/http';
import { z } from 'zod';
import { feedResponse } from './calendar/routes.ts';
import { listQuery } from './commitments/routes.ts';
import { notification, notificationOperations } from './notifications/openapi.ts';
import { consistencyBody, entryBody, receiptBody } from './verify-routes.ts';

const COMMITMENT_ID = '0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10';
const USER_ID = '5d1c2b7e-8a34-4f0e-b6a9-1e2f3a4b5c6d';
const HASH = 'q1Jm7m0tYb2I1n6f0xk3V7wq6d5o0rj2cJ3wq1uXh5k=';
const CHECKPOINT =
  'connect.example.com/ledger\n43\nK2r1Zp9mQ0c8vH3yT6wX5uB4nA7sD1fG2hJ3kL4mN5o=\n\n— connect.example.com/ledger Az3f9Q…\n';

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
  purpose: z
    .enum(['terms', 'evidence'])
    .meta({ description: 'terms (agreed in the draft) or evidence (added later)' }),
  attachedBy: z.string().nullable(),
});
const termChanges = z.record(z.string(), z.unknown()).meta({ description: 'the terms it changes, by field' });
const pendingAmendment = z
  .object({
    amendmentId: z.uuid(),
    proposedBy: z.string(),
    proposedByName: z.string().nullable(),
    changes: termChanges,
    acceptedBy: z.array(z.string()),
  })
  .meta({ description: 'an amendment awaiting every party’s acceptance' });
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
  pendingAmendment: pendingAmendment.nullable(),
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

const commitmentType = z.object({
  key: z.string(),
  name: z.string(),
  requiresAmount: z.boolean(),
  requiresDueDate: z.boolean(),
  minWitnesses: z.number().int(),
  createdBy: z.enum(CREATED_BY).meta({ description: 'who may create one (403 with rule otherwise)' }),
  witnessesMustBeVerified: z.boolean(),
});
const entry = z.object({
  ledger: z.string(),
  index: z.number().int(),
  id: z.uuid(),
  stream: z.string(),
  version: z.number().int(),
  type: z.string(),
  schema: z.number().int(),
  recordedAt: z.string(),
  actor: z.string().nullable(),
  meta: z.record(z.string(), z.unknown()),
  dataHash: z.string(),
  data: z.record(z.string(), z.unknown()).nullable().meta({ description: 'null once redacted' }),
  salt: z.string().nullable(),
  redacted: z.boolean(),
  leafHash: z.string(),
});
const hashes = z.array(z.string()).meta({ description: 'base64 SHA-256 hashes, leaf side first' });
const inclusionProof = z.object({
  index: z.number().int(),
  treeSize: z.number().int(),
  leafHash: z.string(),
  hashes,
});
const consistencyProof = z.object({ from: z.number().int(), to: z.number().int(), hashes });
const receiptBundle = z.looseObject({
  origin: z.string(),
  verifierKey: z.string(),
  checkpoint: z.string().meta({ description: 'the signed note every proof leads to' }),
  streamHead: z
    .string()
    .meta({ description: 'a signed note: the stream’s latest version and index at the checkpoint’s tree' }),
  entries: z.array(entry.extend({ proof: inclusionProof.omit({ leafHash: true }) })),
  state: z.record(z.string(), z.unknown()).meta({ description: 'what the entries replay to' }),
});
const verifyResult = z.object({
  valid: z.boolean(),
  checks: z.array(
    z.object({
      name: z.string(),
      ok: z.boolean(),
      detail: z.string().optional(),
      notMade: z.boolean().optional().meta({ description: 'a check this verifier could not make' }),
    }),
  ),
});
const auditResult = z.union([
  z.object({
    ok: z.literal(true),
    treeSize: z.number().int(),
    checkpoints: z.number().int(),
    seconds: z.number(),
  }),
  z.object({
    ok: z.literal(false),
    treeSize: z.number().int(),
    index: z.number().int().nullable(),
    problem: z.string(),
    seconds: z.number(),
  }),
]);

const entryExample = {
  ledger: 'connect.example.com/ledger',
  index: 42,
  id: '3f2e1d0c-9b8a-4766-8554-433221100fed',
  stream: `commitment-${COMMITMENT_ID}`,
  version: 1,
  type: 'CommitmentCreated',
  schema: 1,
  recordedAt: '2031-05-01T09:30:00.000Z',
  actor: USER_ID,
  meta: {},
  dataHash: 'b7X1c2V3n4M5a6S7d8F9g0H1j2K3l4Z5x6C7v8B9n0M=',
  data: { commitmentId: COMMITMENT_ID, type: 'personal', title: 'Paint the fence' },
  salt: 'c2FsdHNhbHRzYWx0c2FsdA==',
  redacted: false,
  leafHash: HASH,
};
const commitmentExample = {
  id: COMMITMENT_ID,
  type: 'personal',
  title: 'Paint the fence',
  description: 'The garden fence, both sides',
  terms: 'One coat, white',
  amount: null,
  dueAt: '2031-06-01T12:00:00.000Z',
  status: 'proposed',
  overdue: false,
  version: 3,
  createdAt: '2031-05-01T09:30:00.000Z',
  updatedAt: '2031-05-01T10:02:00.000Z',
  parties: [
    { userId: USER_ID, displayName: 'Ana', role: 'creator', response: 'accepted' },
    {
      userId: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
      displayName: 'Ben',
      role: 'participant',
      response: 'invited',
    },
  ],
  documents: [],
  pendingAmendment: null,
};
const verifyExample = {
  valid: true,
  checks: [
    { name: 'checkpoint is signed by the ledger key', ok: true },
    { name: 'entry 42 is included in the checkpoint', ok: true },
  ],
};

const ICS = [
  'BEGIN:VCALENDAR',
  'VERSION:2.0',
  'PRODID:-//Connect//Commitments//EN',
  'BEGIN:VEVENT',
  `UID:${COMMITMENT_ID}@connect.example.com/ledger`,
  'DTSTAMP:20310501T100200Z',
  'DTSTART:20310601T120000Z',
  'SEQUENCE:3',
  'STATUS:TENTATIVE',
  'SUMMARY:Paint the fence',
  `URL:https://app.connect.example.com/commitments/${COMMITMENT_ID}`,
  `ATTENDEE;CN="Ben";ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION:urn:uuid:9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d`,
  'BEGIN:VALARM',
  'ACTION:DISPLAY',
  'TRIGGER:-P1D',
  'DESCRIPTION:Due in 1 day: Paint the fence',
  'END:VALARM',
  'END:VEVENT',
  'END:VCALENDAR',
  '',
].join('\r\n');
const calendarText = z.string().meta({ description: 'iCalendar (RFC 5545), one VEVENT per commitment' });
const feedExample = {
  url: 'https://connect.example.com/v1/calendar/q1Jm7m0tYb2I1n6f0xk3V7wq6d5o0rj2cJ3wq1uXh5k.ics',
  createdAt: '2031-05-01T09:30:00.000Z',
};
const ifNoneMatch = {
  name: 'If-None-Match',
  description: 'the ETag of a calendar you have: 304 if unchanged',
};

const exportedAt = '2031-05-02T08:00:00.000Z';
const meExport = z.object({
  format: z.literal('connect-export/1'),
  exportedAt: z.string(),
  userId: z.uuid(),
  ledger: z.object({ origin: z.string(), verifierKey: z.string() }).meta({
    description: 'the ledger the receipts verify against',
  }),
  account: z.object({
    id: z.uuid(),
    email: z.string(),
    displayName: z.string(),
    avatarUrl: z.string().nullable(),
    emailVerified: z.boolean(),
    emailVerifiedAt: z.string().nullable(),
    createdAt: z.string(),
    roles: z.array(z.string()),
  }),
  identities: z.array(
    z.object({
      provider: z.string(),
      subject: z.string(),
      email: z.string().nullable(),
      emailVerified: z.boolean(),
      createdAt: z.string(),
      lastSignInAt: z.string(),
    }),
  ),
  phoneNumbers: z.array(
    z.object({
      phone: z.string(),
      confirmed: z.boolean(),
      confirmedAt: z.string().nullable(),
      createdAt: z.string(),
    }),
  ),
  notificationPreferences: z
    .array(z.object({ channel: z.string(), kind: z.string(), enabled: z.boolean(), updatedAt: z.string() }))
    .meta({ description: 'the choices made; every other channel × kind is at its default' }),
  pushSubscriptions: z
    .array(
      z.object({
        id: z.uuid(),
        endpointOrigin: z.string(),
        createdAt: z.string(),
        lastSuccessAt: z.string().nullable(),
      }),
    )
    .meta({ description: 'the push service each browser subscribed with (its origin; never the keys)' }),
  calendarFeeds: z
    .array(z.object({ createdAt: z.string() }))
    .meta({ description: 'the secret feed, by when it was issued (never its URL)' }),
  sessions: z.array(
    z.object({
      id: z.uuid(),
      createdAt: z.string(),
      lastActiveAt: z.string(),
      expiresAt: z.string(),
      revokedAt: z.string().nullable(),
      userAgent: z.string().nullable(),
      address: z.string().nullable(),
      current: z.boolean().meta({ description: 'the session of the access token that asked' }),
    }),
  ),
  commitments: z.array(
    z.object({
      commitment,
      history: z.array(historyEvent),
      documentVersions: z
        .array(document.extend({ attachedByName: z.string().nullable() }))
        .meta({ description: 'every stored version of every document: metadata, not the bytes' }),
      receipt: receiptBundle,
    }),
  ),
  notifications: z.array(notification).meta({ description: 'read and unread, newest first' }),
});
const meExportExample = {
  format: 'connect-export/1',
  exportedAt,
  userId: USER_ID,
  ledger: { origin: 'connect.example.com/ledger', verifierKey: 'connect.example.com/ledger+1a2b3c4d+AXm…' },
  account: {
    id: USER_ID,
    email: 'ana@example.com',
    displayName: 'Ana',
    avatarUrl: null,
    emailVerified: true,
    emailVerifiedAt: '2031-05-01T09:00:00.000Z',
    createdAt: '2031-05-01T08:55:00.000Z',
    roles: [],
  },
  identities: [],
  phoneNumbers: [{ phone: '+31612345678', confirmed: true, confirmedAt: exportedAt, createdAt: exportedAt }],
  notificationPreferences: [{ channel: 'email', kind: 'lifecycle', enabled: true, updatedAt: exportedAt }],
  pushSubscriptions: [],
  calendarFeeds: [{ createdAt: '2031-05-01T09:40:00.000Z' }],
  sessions: [
    {
      id: '7c6d5e4f-3a2b-4c1d-9e8f-0a1b2c3d4e5f',
      createdAt: '2031-05-01T08:55:00.000Z',
      lastActiveAt: exportedAt,
      expiresAt: '2031-05-31T08:55:00.000Z',
      revokedAt: null,
      userAgent: 'Mozilla/5.0',
      address: '203.0.113.7',
      current: true,
    },
  ],
  commitments: [
    {
      commitment: commitmentExample,
      history: [
        {
          index: 42,
          version: 1,
          type: 'CommitmentDrafted',
          at: '2031-05-01T09:30:00.000Z',
          actor: { userId: USER_ID, displayName: 'Ana' },
          summary: 'Ana drafted "Paint the fence" (personal)',
          changes: { title: 'Paint the fence' },
          leafHash: HASH,
          redacted: false,
        },
      ],
      documentVersions: [],
      receipt: {
        origin: 'connect.example.com/ledger',
        verifierKey: 'connect.example.com/ledger+1a2b3c4d+AXm…',
        checkpoint: CHECKPOINT,
        streamHead: '',
        entries: [{ ...entryExample, proof: { index: 42, treeSize: 43, hashes: [HASH] } }],
        state: { id: COMMITMENT_ID, status: 'draft', version: 1, title: 'Paint the fence' },
      },
    },
  ],
  notifications: [],
};

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
    examples: { response: { items: [commitmentExample], nextCursor: 'eyJjIjoiMjAzMS0wNS0wMSJ9' } },
    responses: { '200': 'A page', ...readErrors },
  },
  {
    method: 'get',
    path: '/v1/commitments/{id}',
    summary: 'One commitment with its parties and documents (ETag: its version)',
    auth: true,
    headers: readHeaders,
    response: commitment,
    examples: { response: commitmentExample },
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
    examples: {
      response: {
        commitmentId: COMMITMENT_ID,
        events: [
          {
            index: 42,
            version: 1,
            type: 'CommitmentCreated',
            at: '2031-05-01T09:30:00.000Z',
            actor: { userId: USER_ID, displayName: 'Ana' },
            summary: 'Ana created “Paint the fence”',
            changes: { title: 'Paint the fence' },
            leafHash: HASH,
            redacted: false,
          },
        ],
      },
    },
    responses: { '200': 'The history', '404': 'Not there or not visible', ...readErrors },
  },
  {
    method: 'get',
    path: '/v1/commitment-types',
    summary: 'The commitment types',
    auth: true,
    headers: readHeaders,
    response: z.object({ items: z.array(commitmentType) }),
    examples: {
      response: {
        items: [
          {
            key: 'personal',
            name: 'Personal',
            requiresAmount: false,
            requiresDueDate: false,
            minWitnesses: 0,
            createdBy: 'anyone',
            witnessesMustBeVerified: false,
          },
        ],
      },
    },
    responses: { '200': 'The types', ...readErrors },
  },
  ...notificationOperations,
  {
    method: 'get',
    path: '/v1/ledger/checkpoint',
    summary: 'The latest signed checkpoint (text/plain, C2SP signed note)',
    response: z.string().meta({ description: 'origin, tree size and root hash, then the signature lines' }),
    responseType: 'text/plain',
    examples: { response: CHECKPOINT },
    responses: { '200': 'The checkpoint', '404': 'No checkpoint signed yet' },
  },
  {
    method: 'get',
    path: '/v1/ledger/key',
    summary: 'The ledger origin and verifier key',
    response: z.object({
      origin: z.string(),
      verifierKey: z.string(),
      publicKey: z.string(),
      algorithm: z.literal('Ed25519'),
    }),
    examples: {
      response: {
        origin: 'connect.example.com/ledger',
        verifierKey: 'connect.example.com/ledger+1a2b3c4d+AXm…',
        publicKey: 'Xm5v0JbqW1o2p3q4r5s6t7u8v9w0x1y2z3A4B5C6D7E=',
        algorithm: 'Ed25519',
      },
    },
    responses: { '200': 'The key' },
  },
  {
    method: 'get',
    path: '/v1/ledger/proofs/inclusion',
    summary: 'Inclusion proof of an entry in a tree size',
    query: proofQuery(['index', 'treeSize']),
    response: inclusionProof,
    examples: { response: { index: 42, treeSize: 43, leafHash: HASH, hashes: [HASH] } },
    responses: { '200': 'The proof', '400': 'Bad or out-of-range parameter, named' },
  },
  {
    method: 'get',
    path: '/v1/ledger/proofs/consistency',
    summary: 'Consistency proof between two tree sizes',
    query: proofQuery(['from', 'to']),
    response: consistencyProof,
    examples: { response: { from: 40, to: 43, hashes: [HASH, HASH] } },
    responses: { '200': 'The proof', '400': 'Bad or out-of-range parameter, named' },
  },
  {
    method: 'get',
    path: '/v1/ledger/entries/{index}',
    summary: 'One ledger entry: header, data, salt, leaf hash (parties of its commitment only)',
    auth: true,
    headers: readHeaders,
    response: entry,
    examples: { response: entryExample },
    responses: { '200': 'The entry', '404': 'No such entry, or not yours to read', ...readErrors },
  },
  {
    method: 'get',
    path: '/v1/commitments/{id}/receipt',
    summary:
      'The receipt bundle: checkpoint, key, every event with its inclusion proof, the state (parties only)',
    auth: true,
    headers: readHeaders,
    response: receiptBundle,
    examples: {
      response: {
        origin: 'connect.example.com/ledger',
        verifierKey: 'connect.example.com/ledger+1a2b3c4d+AXm…',
        checkpoint: CHECKPOINT,
        streamHead: `connect-stream-head/v1\nconnect.example.com/ledger\ncommitment-${COMMITMENT_ID}\n1\n42\n43\nK2r1Zp9mQ0c8vH3yT6wX5uB4nA7sD1fG2hJ3kL4mN5o=\n\n— connect.example.com/ledger Az3f9Q…\n`,
        entries: [{ ...entryExample, proof: { index: 42, treeSize: 43, hashes: [HASH] } }],
        state: { id: COMMITMENT_ID, status: 'draft', version: 1, title: 'Paint the fence' },
      },
    },
    responses: { '200': 'Receipt bundle (LEDGER.md)', '404': 'Not there or not visible', ...readErrors },
  },
  {
    method: 'post',
    path: '/v1/admin/ledger/audit',
    summary: 'Run the full ledger audit (admins): every hash, subtree and checkpoint recomputed',
    auth: true,
    response: auditResult,
    examples: { response: { ok: true, treeSize: 43, checkpoints: 12, seconds: 0.84 } },
    responses: {
      '200': '{ok, treeSize, …} naming the first bad entry',
      '401': 'No or bad access token',
      '403': 'Not an admin',
      '409': 'Already running',
    },
    problems: ['busy'],
  },
  {
    method: 'post',
    path: '/v1/ledger/verify',
    summary: 'Verify a receipt bundle, an entry with its proof, or two checkpoints; names every check',
    body: z.union([receiptBody, entryBody, consistencyBody]),
    response: verifyResult,
    examples: {
      request: {
        entry: entryExample,
        proof: { index: 42, treeSize: 43, hashes: [HASH] },
        checkpoint: CHECKPOINT,
      },
      response: verifyExample,
    },
    responses: {
      '200': '{valid, checks}: values that do not add up are failed checks, not errors',
      '400': 'Not a receipt, entry or checkpoint pair',
      '413': 'Larger than 8 MB',
      '429':
        'Too many verifications from this address (CONNECT_VERIFY_RATE_LIMIT a minute); Retry-After says when to try again',
    },
  },
  {
    method: 'get',
    path: '/v1/me/export',
    summary:
      'Everything Connect holds about the caller, as one JSON download (Content-Disposition: attachment): account, linked identities, phone, notification preferences, push subscriptions, calendar feed, sessions, every commitment they are a party to with its history, document versions (metadata) and receipt, and their notifications. No password or token hashes, secrets or codes; other people by id and display name only',
    auth: true,
    headers: readHeaders,
    response: meExport,
    examples: { response: meExportExample },
    responses: {
      '200': 'The export (written as it is read)',
      '401': 'No or bad access token',
      '429': 'An export of yours is already being written (Retry-After)',
      '503': 'Connect-Min-Index not reached in time (Retry-After)',
    },
  },
  {
    method: 'get',
    path: '/v1/me/calendar',
    summary:
      'The caller’s secret calendar feed URL (issued on first use; the same URL until rotated). Anyone with the URL can read the feed',
    auth: true,
    response: feedResponse,
    examples: { response: feedExample },
    responses: { '200': '{url, createdAt}', '401': 'No or bad access token' },
  },
  {
    method: 'post',
    path: '/v1/me/calendar/rotate',
    summary: 'A new calendar feed URL; the old one stops working at once',
    auth: true,
    body: z.object({}).strict().meta({ description: 'nothing: an empty object, or no body at all' }),
    response: feedResponse,
    examples: { request: {}, response: feedExample },
    responses: {
      '200': '{url, createdAt}',
      '400': 'A body that is not empty',
      '401': 'No or bad access token',
    },
  },
  {
    method: 'get',
    path: '/v1/calendar/{token}.ics',
    summary:
      'A calendar feed (text/calendar): every commitment with a due date its owner is a party to, with reminders. The token in the URL is the credential; no Authorization header',
    headers: [...readHeaders, ifNoneMatch],
    response: calendarText,
    responseType: 'text/calendar',
    examples: { response: ICS },
    responses: {
      '200': 'The calendar (ETag: a hash of it)',
      '304': 'Not modified',
      '404': 'No feed has this token (never issued, or rotated)',
      '503': 'Connect-Min-Index not reached in time (Retry-After)',
    },
  },
  {
    method: 'get',
    path: '/v1/commitments/{id}/calendar.ics',
    summary: 'One commitment’s calendar event (text/calendar), for its parties',
    auth: true,
    headers: [...readHeaders, ifNoneMatch],
    response: calendarText,
    responseType: 'text/calendar',
    examples: { response: ICS },
    responses: {
      '200': 'The calendar (ETag: a hash of it)',
      '304': 'Not modified',
      '404': 'Not there, not visible, or no due date',
      ...readErrors,
    },
  },
];
