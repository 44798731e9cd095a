// The command API: POST /v1/commitments and POST /v1/commitments/:id/<action>, documents.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Authenticate } from '@connect/auth';
import type { Database, KeyRing } from '@connect/db';
import {
  type CommandName,
  type CommitmentCommand,
  canSee,
  commandBodies,
  latestDocuments,
} from '@connect/domain';
import { badRequest, HttpProblem, parseWith, problem } from '@connect/http';
import type { Ledger } from '@connect/ledger';
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { z } from 'zod';
import { accountEmails } from '../auth/accounts.ts';
import { callerRateLimit } from '../auth/caller-rate-limit.ts';
import { IDEMPOTENCY_REQUEST_KEY, idempotent, keyUsedBefore } from '../idempotency.ts';
import { commandLanes } from './command-lanes.ts';
import { startDeadlineSweeps } from './deadlines.ts';
import {
  commitDraft,
  discardDraft,
  openDocument,
  servedMediaType,
  startDraftSweeps,
} from './document-store.ts';
import { inviteByEmail, listEmailInvitations } from './email-invitations.ts';
import { executeCommand, notFound, type Receipt } from './execute.ts';
import { loadCommitment, type TypeRegistry } from './load.ts';
import { stateCache } from './state-cache.ts';
import { assertMayAttach, receiveUpload, UPLOAD_LIMITS } from './upload.ts';

export interface CommitmentRouteDeps {
  db: Kysely<Database>;
  pool: pg.Pool;
  ledger: Ledger;
  types: TypeRegistry;
  authenticate: Authenticate;
  dataDir: string;
  /** The data keys documents are sealed with. */
  keys: KeyRing;
  /** Whether uploaded documents are written sealed (CONNECT_ENCRYPTION); true when absent. */
  encryption?: boolean;
  maxDocumentBytes?: number;
  /** Invitations by email per user and minute. */
  invitesPerMinute?: number;
}

/** Actions a client may post to /v1/commitments/:id/<action> with a JSON body. */
export const JSON_ACTIONS = Object.keys(commandBodies).filter(
  (action) => !['create', 'miss-deadline', 'attach-document', 'invite'].includes(action),
) as CommandName[];

/** Invite by user id, or by email (an account's, or an address invited to sign up). */
export const inviteBody = z
  .object({
    userId: z.uuid('must be a user id (UUID)').optional(),
    email: z.email().max(254).optional(),
    role: z.enum(['participant', 'witness']),
  })
  .strict()
  .refine((body) => (body.userId === undefined) !== (body.email === undefined), {
    message: 'give exactly one of userId and email',
    path: ['userId'],
  });

const idParam = z.object({ id: z.uuid('must be a commitment id (UUID)') });
const DEFAULT_MAX_DOCUMENT_BYTES = 25 * 1024 * 1024;

function parseIfMatch(request: FastifyRequest): number | undefined {
  const header = request.headers['if-match'];
  if (header === undefined) return undefined;
  const match = /^(?:W\/)?"(\d{1,15})"$/.exec(String(header));
  if (!match)
    throw badRequest([{ path: 'header.if-match', message: 'must be a version in quotes, e.g. "3"' }]);
  return Number(match[1]);
}

function receiptResponse(receipt: Receipt, status: number) {
  return { status, body: receipt, headers: { etag: `"${receipt.version}"` } };
}

export async function commitmentRoutes(app: FastifyInstance, deps: CommitmentRouteDeps): Promise<void> {
  const { db, authenticate } = deps;
  const documentsDir = path.join(deps.dataDir, 'documents');
  const maxDocumentBytes = deps.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
  const sealing = { keys: deps.keys, seal: deps.encryption ?? true };
  const execution = { ...deps, states: stateCache(), lanes: commandLanes(), emails: accountEmails(deps) };
  const replays = {
    db,
    cipher: deps.ledger.cipher.fields,
    requestKey: await deps.keys.derivedKey(IDEMPOTENCY_REQUEST_KEY),
  };
  const sweeps = startDeadlineSweeps({ ...execution, log: app.log });
  app.addHook('onClose', async () => sweeps.close());
  const drafts = await startDraftSweeps(documentsDir, app.log);
  app.addHook('onClose', async () => drafts.close());
  await app.register(multipart, { limits: { fileSize: maxDocumentBytes, ...UPLOAD_LIMITS } });

  async function run(
    request: FastifyRequest,
    reply: FastifyReply,
    commitmentId: string,
    status: number,
    body: unknown,
    toCommand: () => Promise<CommitmentCommand> | CommitmentCommand,
  ) {
    const caller = await authenticate(request);
    const ifMatch = parseIfMatch(request);
    return idempotent(
      replays,
      request,
      reply,
      caller.userId,
      body,
      async (claim) => {
        const receipt = await executeCommand(execution, {
          commitmentId,
          command: await toCommand(),
          actor: caller,
          ifMatch,
          correlationId: request.correlationId,
          claim,
        });
        return receiptResponse(receipt, status);
      },
      { resumable: true },
    );
  }

  app.post('/v1/commitments', async (request, reply) => {
    const body = parseWith(commandBodies.create, request.body);
    return run(request, reply, randomUUID(), 201, body, () => ({ action: 'create', ...body }));
  });

  const inviteByEmailLimit = await callerRateLimit(app, {
    authenticate,
    max: deps.invitesPerMinute ?? 20,
    applies: (request) => (request.body as { email?: unknown } | null)?.email !== undefined,
    what: 'invitations by email',
  });
  app.post('/v1/commitments/:id/invite', inviteByEmailLimit, async (request, reply) => {
    const { id } = parseWith(idParam, request.params, 'path');
    const body = parseWith(inviteBody, request.body);
    const { email, role } = body;
    if (email === undefined) {
      // The invitee is looked up with the actor, as the command runs (execute.ts).
      return run(request, reply, id, 200, body, () => ({
        action: 'invite',
        userId: body.userId as string,
        role,
      }));
    }
    // 202 and the same body whether or not an account has the address (email-invitations.ts).
    const caller = await authenticate(request);
    const ifMatch = parseIfMatch(request);
    return idempotent(replays, request, reply, caller.userId, body, async () => {
      const input = { commitmentId: id, caller, email, role, ifMatch, correlationId: request.correlationId };
      return { status: 202, body: await inviteByEmail(execution, input), headers: {} };
    });
  });

  app.get('/v1/commitments/:id/invitations', async (request) => {
    const { id } = parseWith(idParam, request.params, 'path');
    const caller = await authenticate(request);
    return { invitations: await listEmailInvitations(execution, id, caller) };
  });

  for (const action of JSON_ACTIONS) {
    app.post(`/v1/commitments/:id/${action}`, async (request, reply) => {
      const { id } = parseWith(idParam, request.params, 'path');
      const body = parseWith(commandBodies[action], request.body);
      return run(request, reply, id, 200, body, () => ({ action, ...body }) as CommitmentCommand);
    });
  }

  app.post('/v1/commitments/:id/documents', async (request, reply) => {
    const { id } = parseWith(idParam, request.params, 'path');
    const caller = await authenticate(request);
    const ifMatch = parseIfMatch(request);
    const state = await loadCommitment(db, deps.ledger, id);
    if (!state.exists || !canSee(state, caller)) throw notFound();
    if (!request.isMultipart())
      throw new HttpProblem(problem(415, 'Send the document as multipart/form-data.'));
    // Decide first, stream second: a refused upload is refused before its bytes arrive, and writes
    // nothing. Not when its Idempotency-Key was used before: it may retry an upload recorded since
    // (the commitment has moved on), whose answer is replayed once its bytes are found to be the
    // same. (The state was read before the key: a key unused then had recorded nothing in it.)
    if (!(await keyUsedBefore(db, request, caller.userId)))
      await assertMayAttach(state, caller.userId, deps.types, ifMatch);
    const upload = await receiveUpload(request, documentsDir, maxDocumentBytes, sealing);
    try {
      const command = parseWith(commandBodies['attach-document'], {
        name: upload.name ?? upload.filename,
        mediaType: upload.mediaType,
        size: upload.draft.size,
        sha256: upload.draft.sha256,
      });
      return await idempotent(replays, request, reply, caller.userId, command, async () => {
        const receipt = await executeCommand(execution, {
          commitmentId: id,
          command: { action: 'attach-document', ...command },
          actor: caller,
          ifMatch,
          correlationId: request.correlationId,
        });
        // Only a recorded document takes its place: the bytes at a hash are always referenced.
        await commitDraft(documentsDir, upload.draft);
        return receiptResponse(receipt, 201);
      });
    } finally {
      // Gone already once committed; otherwise refused, failed or an idempotent replay.
      await discardDraft(upload.draft);
    }
  });

  app.get('/v1/commitments/:id/documents/:documentId/content', async (request, reply) => {
    const { id, documentId } = parseWith(idParam.extend({ documentId: z.uuid() }), request.params, 'path');
    const { version } = parseWith(
      z.object({ version: z.coerce.number().int().min(1).optional() }).strict(),
      request.query,
      'query',
    );
    const caller = await authenticate(request);
    const state = await loadCommitment(db, deps.ledger, id);
    if (!state.exists || !canSee(state, caller)) throw notFound();
    const versions = state.documents.filter((d) => d.documentId === documentId);
    const document =
      version === undefined
        ? latestDocuments(state).find((d) => d.documentId === documentId)
        : versions.find((d) => d.version === version);
    if (!document) throw new HttpProblem(problem(404, 'No such document or version on this commitment.'));
    const { stream, size } = await openDocument(documentsDir, document.sha256, deps.keys);
    return reply
      .type(servedMediaType(document.mediaType))
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', 'sandbox')
      .header('content-length', size)
      .header('etag', `"${document.sha256}"`)
      .header('connect-document-version', document.version)
      .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(document.name)}`)
      .send(stream);
  });
}
