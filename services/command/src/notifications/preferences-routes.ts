// A person's notification preferences (channel × kind), and RFC 8058 one-click unsubscribe from
// the links in emails.
import type { Authenticate } from '@connect/auth';
import type { Database } from '@connect/db';
import { badRequest, type FieldError, HttpProblem, problem } from '@connect/http';
import {
  KIND_LABELS,
  loadUnsubscribeTokens,
  preferenceChangesSchema,
  preferencesFor,
  setPreferences,
  type UnsubscribeTokens,
} from '@connect/notifier';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';

export interface PreferenceRouteDeps {
  db: Kysely<Database>;
  authenticate: Authenticate;
  dataDir: string;
  /** The unsubscribe tokens' key; loaded from (or made in) the data directory when absent. */
  unsubscribeTokens?: UnsubscribeTokens;
}

export const unsubscribeQuery = z.object({ token: z.string().min(1).max(200) });

/** Parses a PUT body, naming each bad field, an unknown channel or kind included, by its path. */
function parseChanges(body: unknown) {
  const result = preferenceChangesSchema.safeParse(body ?? {});
  if (result.success) return result.data;
  const errors: FieldError[] = result.error.issues.flatMap((issue) => {
    const at = ['body', ...issue.path.map(String)];
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({
        path: [...at, key].join('.'),
        message:
          at.length === 1 ? 'is not a channel (inapp, email, push, sms)' : 'is not a notification kind',
      }));
    }
    return [{ path: at.join('.'), message: issue.message }];
  });
  throw badRequest(errors);
}

export async function notificationPreferenceRoutes(
  app: FastifyInstance,
  deps: PreferenceRouteDeps,
): Promise<void> {
  const { db, authenticate } = deps;
  const tokens = deps.unsubscribeTokens ?? (await loadUnsubscribeTokens(deps.dataDir));

  app.get('/v1/me/notification-preferences', async (request) => {
    const caller = await authenticate(request);
    return preferencesFor(db, caller.userId);
  });

  app.put('/v1/me/notification-preferences', async (request) => {
    const caller = await authenticate(request);
    return setPreferences(db, caller.userId, parseChanges(request.body));
  });

  function unsubscription(request: FastifyRequest) {
    const query = unsubscribeQuery.safeParse(request.query);
    const found = query.success ? tokens.verify(query.data.token) : undefined;
    if (!found) {
      throw badRequest(
        [{ path: 'query.token', message: 'is not an unsubscribe link of ours' }],
        'This unsubscribe link is not valid; change your notification preferences in the app.',
      );
    }
    return found;
  }

  // One-click unsubscribe: mail clients POST `List-Unsubscribe=One-Click` to the link (RFC 8058),
  // form-encoded or multipart. The token in the URL says everything, so the body is not read.
  await app.register(async (scope) => {
    const ignore = (_request: FastifyRequest, _body: string, done: (error: null, body: undefined) => void) =>
      done(null, undefined);
    scope.addContentTypeParser(
      ['application/x-www-form-urlencoded', 'multipart/form-data'],
      { parseAs: 'string', bodyLimit: 4096 },
      ignore,
    );

    scope.post('/v1/unsubscribe', async (request, reply) => {
      const { userId, kind } = unsubscription(request);
      const user = await db.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst();
      if (!user) throw new HttpProblem(problem(404, 'This account no longer exists.'));
      await setPreferences(db, userId, { email: { [kind]: false } });
      if (request.headers.accept?.includes('text/html')) {
        return reply
          .type('text/html; charset=utf-8')
          .send(page('Unsubscribed', `<h1>You will no longer get emails about ${KIND_LABELS[kind]}.</h1>`));
      }
      return { channel: 'email', kind, enabled: false };
    });

    // What a person who opens the link in a browser sees: the same POST, behind a button.
    scope.get('/v1/unsubscribe', async (request, reply) => {
      const { kind } = unsubscription(request);
      return reply
        .type('text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('referrer-policy', 'no-referrer')
        .send(
          page(
            'Unsubscribe',
            `<h1>Stop emails about ${KIND_LABELS[kind]}?</h1>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit" style="padding:.6rem 1.2rem;font-size:1rem">Unsubscribe</button></form>`,
          ),
        );
    });
  });
}

/** A tiny page; its content is constant text (the kind labels), not anything a request brings. */
const page = (title: string, content: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title></head>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem">
${content}
<p>You can change which emails you get in the app’s notification settings.</p>
</body></html>
`;
