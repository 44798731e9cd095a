// Idempotency-Key, as the IETF draft describes it: a retry with the same key and body gets the
// first response again and changes nothing; the same key with another body is a 422; a retry
// while the first request is still running is a 409. The first response's body (a commitment's
// terms…) is kept sealed under the caller's key: once the caller's key is erased it is gone, and a
// retry gets a 410 rather than the request run a second time. A request still in flight after
// ABANDONED_AFTER_MS, or claimed before PostgreSQL last restarted, is taken for abandoned (its
// process died, or the restart lost the claim's answer): a retry of a resumable one runs it
// again, and the ledger idempotency key it carries makes that find the first append, if it
// committed, rather than append again.
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { type JsonValue, jcsText } from '@connect/crypto';
import { type Database, type FieldCipher, idempotentBodyField } from '@connect/db';
import { badRequest, HttpProblem, problem } from '@connect/http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Kysely, sql } from 'kysely';

export interface StoredResponse {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

/** Where the first responses are kept, and the cipher that seals and opens their bodies. */
export interface IdempotencyStore {
  db: Kysely<Database>;
  cipher: FieldCipher;
  /**
   * The key requests are hashed with (derived, IDEMPOTENCY_REQUEST_KEY): a plain hash of a body
   * would confirm a guessed address or title to whoever reads the table.
   */
  requestKey: Uint8Array;
}

/** The purpose of the derived key requests are hashed with. */
export const IDEMPOTENCY_REQUEST_KEY = 'idempotent requests';

const KEY = /^[\x21-\x7e]{1,255}$/;

/** How long a request may stay in flight before a retry takes it for abandoned. */
export const ABANDONED_AFTER_MS = 30_000;

/** What the handler of a claimed key is told. */
export interface Claim {
  /** The ledger idempotency key for this (user, key): at most one append is ever recorded under it. */
  ledgerKey: string;
  /** True when a retry took over a request its first process abandoned. */
  resumed: boolean;
}

function claimOf(userId: string, key: string, resumed: boolean): Claim {
  return { ledgerKey: `http:${createHash('sha256').update(`${userId}\n${key}`).digest('hex')}`, resumed };
}

/** Forgets a claim `token`'s request still holds, so that a retry runs the request again. */
function release(db: Kysely<Database>, userId: string, key: string, token: string) {
  return db
    .deleteFrom('http_idempotency')
    .where('user_id', '=', userId)
    .where('key', '=', key)
    .where('claim', '=', token)
    .where('status', 'is', null)
    .execute();
}

const inFlight = () =>
  new HttpProblem(
    problem(
      409,
      'A request with this Idempotency-Key is still in progress; retry later.',
      undefined,
      'idempotency-key-in-flight',
    ),
  );

/**
 * Claims an in-flight key whose request was abandoned, under `token`; false when it is not (yet)
 * or another retry won.
 */
async function takeOver(db: Kysely<Database>, userId: string, key: string, token: string): Promise<boolean> {
  const taken = await db
    .updateTable('http_idempotency')
    .set({ created_at: sql<Date>`now()`, claim: token })
    .where('user_id', '=', userId)
    .where('key', '=', key)
    .where('status', 'is', null)
    // Abandoned: in flight for too long, or claimed before PostgreSQL last started (a restart cut
    // every session, and a claim whose answer it lost has nobody left to settle it).
    .where((eb) =>
      eb.or([
        eb('created_at', '<', sql<Date>`now() - make_interval(secs => ${ABANDONED_AFTER_MS / 1000})`),
        eb('created_at', '<', sql<Date>`pg_postmaster_start_time()`),
      ]),
    )
    .returning('key')
    .executeTakeFirst();
  return taken !== undefined;
}

/** The request's Idempotency-Key, if it has one; a 400 when it is not a key. */
function idempotencyKeyOf(request: FastifyRequest): string | undefined {
  const key = request.headers['idempotency-key'];
  if (key === undefined) return undefined;
  if (typeof key !== 'string' || !KEY.test(key)) {
    throw badRequest([
      { path: 'header.idempotency-key', message: 'must be 1 to 255 printable ASCII characters' },
    ]);
  }
  return key;
}

/** What is kept under a user's key: the request's hash, and its answer once it has one. */
const keptUnder = (db: Kysely<Database>, userId: string, key: string) =>
  db
    .selectFrom('http_idempotency')
    .selectAll()
    .where('user_id', '=', userId)
    .where('key', '=', key)
    .executeTakeFirst();

/**
 * Whether a request was made before under this request's Idempotency-Key (answered or still in
 * flight): then this one may be its retry, to be answered as the first was (or refused, as a key
 * used for another request is). False without a key.
 */
export async function keyUsedBefore(
  db: Kysely<Database>,
  request: FastifyRequest,
  userId: string,
): Promise<boolean> {
  const key = idempotencyKeyOf(request);
  return key !== undefined && (await keptUnder(db, userId, key)) !== undefined;
}

function requestHash(key: Uint8Array, request: FastifyRequest, body: unknown): Buffer {
  return createHmac('sha256', key)
    .update(`${request.method} ${request.url}\n`)
    .update(jcsText((body ?? null) as JsonValue))
    .digest();
}

/**
 * Runs `handle` once per (user, Idempotency-Key); without the header it just runs it. The body
 * to compare is passed in, as parsed, so a multipart upload can be keyed by its content hash.
 * `resumable`: `handle` records its effect under the claim's ledger key and, resumed, answers
 * with what an earlier run recorded, so an abandoned request may be run again.
 */
export async function idempotent(
  store: IdempotencyStore,
  request: FastifyRequest,
  reply: FastifyReply,
  userId: string,
  body: unknown,
  handle: (claim?: Claim) => Promise<StoredResponse>,
  { resumable = false }: { resumable?: boolean } = {},
): Promise<FastifyReply> {
  const { db, cipher, requestKey } = store;
  const key = idempotencyKeyOf(request);
  if (key === undefined) return send(reply, await handle());
  const hash = requestHash(requestKey, request, body);
  const token = randomUUID();
  let claimed: { key: string } | undefined;
  try {
    claimed = await db
      .insertInto('http_idempotency')
      .values({
        user_id: userId,
        key,
        request_hash: hash,
        status: null,
        body: null,
        headers: null,
        claim: token,
      })
      .onConflict((oc) => oc.columns(['user_id', 'key']).doNothing())
      .returning('key')
      .executeTakeFirst();
  } catch (error) {
    // The claim may have committed with only its answer lost (a connection cut by a restart):
    // once the database is back it is released, rather than held until taken for abandoned.
    retryInBackground(() => release(db, userId, key, token));
    throw error;
  }
  if (!claimed) {
    const first = await keptUnder(db, userId, key);
    // Released between the two statements (its request failed): the retry may claim it now.
    if (!first) throw inFlight();
    if (!Buffer.from(first.request_hash).equals(hash)) {
      throw new HttpProblem(
        problem(
          422,
          'This Idempotency-Key was used with another request; use a new key.',
          undefined,
          'idempotency-key-reused',
        ),
      );
    }
    if (first.status === null) {
      if (resumable && (await takeOver(db, userId, key, token))) {
        return runClaimed(store, reply, { userId, key, token }, () => handle(claimOf(userId, key, true)));
      }
      throw inFlight();
    }
    const [replayed] =
      first.body === null
        ? [undefined]
        : await cipher.open([{ ...idempotentBodyField(userId, key), stored: first.body }]);
    if (replayed === undefined) {
      throw new HttpProblem(
        problem(
          410,
          'The request with this Idempotency-Key was done, but its response is no longer kept (the data it held was erased); use a new key to do it again.',
          undefined,
          'idempotency-response-erased',
        ),
      );
    }
    reply.header('idempotency-replayed', 'true');
    return send(reply, {
      status: first.status,
      body: replayed,
      headers: first.headers as Record<string, string>,
    });
  }
  return runClaimed(store, reply, { userId, key, token }, () => handle(claimOf(userId, key, false)));
}

/**
 * Runs the request whose key this request holds under `token`, and keeps its response for
 * retries. Once a retry took the key over (this run was taken for abandoned), the key is the
 * retry's to settle: this run neither forgets nor overwrites it.
 */
async function runClaimed(
  { db, cipher }: IdempotencyStore,
  reply: FastifyReply,
  { userId, key, token }: { userId: string; key: string; token: string },
  handle: () => Promise<StoredResponse>,
): Promise<FastifyReply> {
  let response: StoredResponse;
  try {
    response = await handle();
  } catch (error) {
    // Nothing was done (or, if the database went away after an append, the ledger key finds it):
    // forget the key, so a retry runs again.
    const forget = () => release(db, userId, key, token);
    await forget().catch(() => retryInBackground(forget));
    throw error;
  }
  // Null once the caller's key is erased (an erasure raced this request): nothing of theirs is kept.
  const [sealed] = await cipher.seal([{ ...idempotentBodyField(userId, key), value: response.body ?? null }]);
  const keep = () =>
    db
      .updateTable('http_idempotency')
      .set({
        status: response.status,
        body: sealed ?? null,
        headers: JSON.stringify(response.headers),
      })
      .where('user_id', '=', userId)
      .where('key', '=', key)
      .where('claim', '=', token)
      .execute();
  try {
    await keep();
  } catch (error) {
    // Done, but the answer could not be kept: the caller is told the database failed, and its
    // retry gets this answer once the database takes it.
    retryInBackground(keep);
    throw error;
  }
  return send(reply, response);
}

/** How long a write that settles a key is tried again after the database failed it. */
const SETTLE_RETRY_MS = 60_000;

/**
 * Tries `write` again, with growing pauses, until it succeeds or a minute has passed: a key left
 * in flight by an outage is settled as soon as the database is back rather than when a retry
 * takes it for abandoned (which still covers a process that dies meanwhile).
 */
function retryInBackground(write: () => Promise<unknown>): void {
  const deadline = Date.now() + SETTLE_RETRY_MS;
  const attempt = (pause: number) => {
    setTimeout(() => {
      write().catch(() => {
        if (Date.now() < deadline) attempt(Math.min(pause * 2, 5000));
      });
    }, pause).unref();
  };
  attempt(200);
}

function send(reply: FastifyReply, response: StoredResponse): FastifyReply {
  return reply.code(response.status).headers(response.headers).send(response.body);
}
