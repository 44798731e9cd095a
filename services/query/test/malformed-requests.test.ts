// Generated malformed requests at every route of the whole service, as a careless client or an
// attacker would send them: never a 5xx, every error a problem+json, and a refused request
// leaves the ledger as it was.
import fc from 'fast-check';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';

let s: Stack;
let token: string;
let commitmentId: string;
let routes: string[];

beforeAll(async () => {
  s = await testStack({ minIndexWaitMs: 20 });
  const signup = await s.app.inject({
    method: 'POST',
    url: '/v1/auth/signup',
    payload: { email: 'fuzz@example.test', password: 'correct horse battery', displayName: 'Fuzz' },
  });
  token = signup.json().access_token;
  const created = await s.app.inject({
    method: 'POST',
    url: '/v1/commitments',
    payload: { type: 'personal', title: 'A target' },
    headers: { authorization: `Bearer ${token}` },
  });
  commitmentId = created.json().commitmentId;
  // GraphiQL and the docs pages serve files; the rest is the API.
  routes = [...new Set(s.routes)].filter((r) => !/graphiql|\/docs|\*/.test(r));
});
afterAll(() => s.close());

const treeSize = async () =>
  (await s.database.db.selectFrom('ledger_head').select('tree_size').executeTakeFirstOrThrow()).tree_size;

/** Text as careless or hostile clients send it: NULs, lone surrogates, long runs, paths, quotes. */
const nastyText = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string().map((text) => `${text}\u0000`),
  fc.string().map((text) => `\uDC00${text}`),
  fc.constantFrom(
    '\u0000',
    'a\u0000b',
    '\uD800',
    'x\uDFFFy',
    '../../etc/passwd',
    "' or 1=1 --",
    '%00',
    '-1',
    '1e309',
    '99999999999999999999999',
    '0000-01-01T00:00:00Z',
    'not-a-uuid',
    '00000000-0000-0000-0000-000000000000',
    '{}',
    'A'.repeat(70_000),
  ),
);
const jsonish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    nastyText,
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.oneof(
        nastyText,
        fc.constantFrom(
          'title',
          'type',
          'dueAt',
          'userId',
          'receipt',
          'entry',
          'entries',
          'proof',
          'checkpoint',
          'email',
          'password',
          'query',
          'variables',
        ),
      ),
      tie('value'),
      { maxKeys: 5 },
    ),
  ),
})).value;

// Valid bodies of the routes that take JSON, for mutation: most bugs hide one field deep.
const TEMPLATES: Record<string, unknown> = {
  '/v1/commitments': {
    type: 'personal',
    title: 'Fence',
    description: 'Paint it',
    terms: 'White',
    amount: { minor: 100, currency: 'EUR' },
    dueAt: '2031-01-01T00:00:00Z',
  },
  update: { title: 'Fence', dueAt: '2031-01-01T00:00:00Z', amount: { minor: 1, currency: 'EUR' } },
  invite: { userId: '00000000-0000-4000-8000-000000000000', role: 'witness' },
  'remove-party': { userId: '00000000-0000-4000-8000-000000000000' },
  cancel: { reason: 'No longer needed' },
  dispute: { reason: 'Not done' },
  'claim-fulfilment': { note: 'Done' },
  resolve: { outcome: 'fulfilled' },
  'propose-amendment': { changes: { terms: 'Blue' } },
  'accept-amendment': { amendmentId: '00000000-0000-4000-8000-000000000000' },
  signup: { email: 'x@example.test', password: 'correct horse battery', displayName: 'X' },
  token: { grant_type: 'password', email: 'fuzz@example.test', password: 'correct horse battery' },
  verify: {
    receipt: {
      origin: 'o',
      verifierKey: 'k',
      checkpoint: 'c',
      entries: [{ index: 0, data: {}, proof: { index: 0, treeSize: 1, hashes: [] } }],
    },
  },
  'commitment-types': {
    key: 'loan',
    name: 'Loan',
    requiresAmount: true,
    requiresDueDate: false,
    minWitnesses: 0,
  },
  graphql: { query: '{ commitments(first: 2) { edges { node { id title } } } }', variables: {} },
};

/** A template with one value somewhere in it replaced (or removed). */
function mutated(template: unknown, path: number[], replacement: unknown, remove: boolean): unknown {
  if (typeof template !== 'object' || template === null || path.length === 0) return replacement;
  const entries = Object.entries(template);
  if (entries.length === 0) return replacement;
  const [at, ...rest] = path as [number, ...number[]];
  const [key, child] = entries[at % entries.length] as [string, unknown];
  const copy: Record<string, unknown> = Array.isArray(template) ? ([...template] as never) : { ...template };
  if (remove && rest.length === 0) delete copy[key];
  else copy[key] = mutated(child, rest, replacement, remove);
  return copy;
}

const templateOf = (route: string) =>
  route.startsWith('POST ')
    ? (TEMPLATES[route.split('/').at(-1) ?? ''] ?? TEMPLATES[route.split(' ')[1] ?? ''])
    : undefined;
const hasTemplate = (route: string) => templateOf(route) !== undefined;

const templateBody = (route: string) => {
  const template = templateOf(route);
  if (template === undefined) return fc.constant(undefined);
  return fc
    .tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), fc.oneof(nastyText, jsonish), fc.boolean())
    .map(([path, value, remove]) => ({
      payload: JSON.stringify(mutated(template, path, value, remove)),
      type: 'application/json',
    }));
};

const body = fc.oneof(
  jsonish.map((value) => ({ payload: JSON.stringify(value), type: 'application/json' })),
  fc.string().map((text) => ({ payload: text, type: 'application/json' })),
  nastyText.map((text) => ({ payload: text, type: 'text/plain' })),
  fc
    .string()
    .map((text) => ({ payload: `--b\r\n${text}\r\n--b--\r\n`, type: 'multipart/form-data; boundary=b' })),
  fc.constant({ payload: '', type: 'application/x-www-form-urlencoded' }),
  fc.constant(undefined),
);

const headerValue = fc.oneof(
  fc.string({ unit: 'grapheme-ascii' }),
  fc.constantFrom('"3"', 'W/"x"', '-1', '1e99'),
);
const pathValue = fc.oneof(
  fc.constantFrom('COMMITMENT', '0', '-1', '18446744073709551616', 'x', '%00', '%ED%A0%80', '%FF', '..%2f'),
  fc.uuid(),
  fc.webSegment(),
);

const requestTo = (routes: string[]) =>
  fc
    .oneof(fc.constantFrom(...routes), fc.constantFrom(...routes.filter((r) => hasTemplate(r))))
    .chain((route) =>
      fc.record({
        route: fc.constant(route),
        body: fc.oneof(body, templateBody(route), templateBody(route)),
        params: fc.array(pathValue, { minLength: 4, maxLength: 4 }),
        query: fc.dictionary(
          fc.constantFrom(
            'status',
            'role',
            'limit',
            'cursor',
            'index',
            'treeSize',
            'from',
            'to',
            'version',
            'dueBefore',
            'x',
          ),
          fc.webSegment(),
          { maxKeys: 3 },
        ),
        auth: fc.constantFrom('valid', 'valid', 'none', 'garbage'),
        ifMatch: fc.option(headerValue),
        idempotencyKey: fc.option(headerValue),
        minIndex: fc.option(fc.oneof(headerValue, fc.constantFrom('0', '1'))),
      }),
    );

test('no generated request gets a 5xx; errors are problem+json; refusals change nothing', async () => {
  await fc.assert(
    fc.asyncProperty(requestTo(routes), async (r) => {
      const [method, pattern] = r.route.split(' ') as [string, string];
      let i = 0;
      const url = pattern.replace(/:\w+/g, () => {
        const value = r.params[i++] ?? 'x';
        return value === 'COMMITMENT' ? commitmentId : encodeURIComponent(value).replace(/%25/g, '%');
      });
      const query = new URLSearchParams(r.query).toString();
      const headers: Record<string, string> = {};
      if (r.auth === 'valid') headers.authorization = `Bearer ${token}`;
      if (r.auth === 'garbage') headers.authorization = 'Bearer eyJhbGciOiJub25lIn0.e30.';
      if (r.body) headers['content-type'] = r.body.type;
      if (r.ifMatch !== null) headers['if-match'] = r.ifMatch;
      if (r.idempotencyKey !== null) headers['idempotency-key'] = r.idempotencyKey;
      if (r.minIndex !== null) headers['connect-min-index'] = r.minIndex;
      const before = await treeSize();
      const response = await s.app.inject({
        method: method as 'GET',
        url: query ? `${url}?${query}` : url,
        headers,
        ...(r.body && method !== 'GET' ? { payload: r.body.payload } : {}),
      });
      const where = `${method} ${url} → ${response.statusCode} ${response.body.slice(0, 300)}`;
      // The one 5xx by design: a read asked to wait for an index the read models have not reached.
      const waitedInVain =
        response.statusCode === 503 && r.minIndex !== null && response.headers['retry-after'];
      if (!waitedInVain) expect(response.statusCode, where).toBeLessThan(500);
      if (response.statusCode >= 400) {
        if (!pattern.startsWith('/graphql')) {
          expect(response.headers['content-type'], where).toMatch(/^application\/problem\+json/);
        }
        expect(await treeSize(), where).toBe(before);
      }
    }),
    { numRuns: Number(process.env.FUZZ_RUNS ?? 1500), endOnFailure: true },
  );
}, 240_000);
