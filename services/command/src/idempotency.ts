// Idempotency-Key, as the IETF draft describes it: a retry with the same key and body gets the
// first response again and changes nothing; the same key with another body is a 422; a retry
// while the first request is still running is a 409.
import { createHash } from 'node:crypto';
import { type JsonValue, jcsText } from '@connect/crypto';
import type { Database } from '@connect/db';
import { badRequest, HttpProblem, problem } from '@connect/http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';

export interface StoredResponse {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

const KEY = /^[\x21-\x7e]{1,255}$/;

function requestHash(request: FastifyRequest, body: unknown): Buffer {
  return createHash('sha256')
    .update(`${request.method} ${request.url}\n`)
    .update(jcsText((body ?? null) as JsonValue))
    .digest();
}

/**
 * Runs `handle` once per (user, Idempotency-Key); without the header it just runs it. The body
 * to compare is passed in, as parsed, so a multipart upload can be keyed by its content hash.
 */
export async function idempotent(
  db: Kysely<Database>,
  request: FastifyRequest,
  reply: FastifyReply,
  userId: string,
  body: unknown,
  handle: () => Promise<StoredResponse>,
): Promise<FastifyReply> {
  const key = request.headers['idempotency-key'];
  if (key === undefined) return send(reply, await handle());
  if (typeof key !== 'string' || !KEY.test(key)) {
    throw badRequest([
      { path: 'header.idempotency-key', message: 'must be 1 to 255 printable ASCII characters' },
    ]);
  }
  const hash = requestHash(request, body);
  const claimed = await db
    .insertInto('http_idempotency')
    .values({ user_id: userId, key, request_hash: hash, status: null, body: null, headers: null })
    .onConflict((oc) => oc.columns(['user_id', 'key']).doNothing())
    .returning('key')
    .executeTakeFirst();
  if (!claimed) {
    const first = await db
      .selectFrom('http_idempotency')
      .selectAll()
      .where('user_id', '=', userId)
      .where('key', '=', key)
      .executeTakeFirstOrThrow();
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
      throw new HttpProblem(
        problem(
          409,
          'A request with this Idempotency-Key is still in progress; retry later.',
          undefined,
          'idempotency-key-in-flight',
        ),
      );
    }
    reply.header('idempotency-replayed', 'true');
    return send(reply, {
      status: first.status,
      body: first.body,
      headers: first.headers as Record<string, string>,
    });
  }
  let response: StoredResponse;
  try {
    response = await handle();
  } catch (error) {
    // Nothing was done: forget the key, so a retry runs again.
    await db.deleteFrom('http_idempotency').where('user_id', '=', userId).where('key', '=', key).execute();
    throw error;
  }
  await db
    .updateTable('http_idempotency')
    .set({
      status: response.status,
      body: JSON.stringify(response.body),
      headers: JSON.stringify(response.headers),
    })
    .where('user_id', '=', userId)
    .where('key', '=', key)
    .execute();
  return send(reply, response);
}

function send(reply: FastifyReply, response: StoredResponse): FastifyReply {
  return reply.code(response.status).headers(response.headers).send(response.body);
}
