// The query service in a process of its own for `npm run bench -- queries`, with bare routes beside
// its own: the same get and list statements (commitmentsById, listCommitments) run on a pool of the
// same size logged in as the database owner (no row-level security), with no authentication,
// no Connect-Index and no problem mapping. requests/s of a route ÷ requests/s of its bare twin is
// what the whole stack costs over the lookup itself (queries.get/list.ratio_to_bare).
//   env: DATABASE_URL, CONNECT_DATA_DIR (the token key), CONNECT_LEDGER_ORIGIN, CONNECT_LEDGER_KEY, PORT

import { loadTokenIssuer } from '@connect/auth';
import { formatVerifierKey, fromBase64, signingKeyFromSeed } from '@connect/crypto';
import { assertMigrated, createKysely, createPool, DEFAULT_READ_POOL_SIZE, readerLogin } from '@connect/db';
import { createServer } from '@connect/http';
import { openBodyCipher } from '@connect/ledger';
import { queryRoutes } from '@connect/query';
import { encodeCursor } from '../services/query/src/commitments/cursor.ts';
import { commitmentsById, listCommitments } from '../services/query/src/commitments/queries.ts';
import { createReaderDb } from '../services/query/src/reader.ts';

/** The read pool's default size (CONNECT_READ_POOL_SIZE unset), for both. */
const POOL = DEFAULT_READ_POOL_SIZE;

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

const url = env('DATABASE_URL');
const dataDir = env('CONNECT_DATA_DIR');
const key = signingKeyFromSeed(env('CONNECT_LEDGER_ORIGIN'), fromBase64(env('CONNECT_LEDGER_KEY')));
const pool = createPool(url, 10);
const db = createKysely(pool);
const owner = createKysely(createPool(url, POOL));
const reader = createReaderDb(await readerLogin(pool, url, { dataDir, readerDatabaseUrl: undefined }), {
  max: POOL,
});

const { keys, cipher } = await openBodyCipher(pool, { dataDir, masterKeys: undefined, encryption: true });
const app = createServer({ logLevel: 'warn', checkReady: () => assertMigrated(pool) });
app.register(queryRoutes, {
  pool,
  db,
  databaseUrl: url,
  reader: reader.db,
  origin: key.name,
  cipher,
  verifierKey: formatVerifierKey(key),
  key,
  tokens: await loadTokenIssuer(dataDir),
});
app.get('/bench/bare/commitments/:id', async (request, reply) => {
  const { id } = request.params as { id: string };
  const [commitment] = await commitmentsById(owner, cipher.fields, [id]);
  if (!commitment) return reply.code(404).send();
  reply.header('etag', `"${commitment.version}"`);
  return commitment;
});
app.get('/bench/bare/commitments', async (request) => {
  const { user, status } = request.query as { user: string; status?: string };
  const page = await listCommitments(owner, cipher.fields, user, { status: status?.split(','), limit: 20 });
  return { items: page.items, nextCursor: page.next && encodeCursor(page.next) };
});
app.addHook('onClose', async () => {
  await reader.close();
  await owner.destroy();
  // The key ring's LISTEN holds a client of `pool`: ended first, or the pool waits for it forever.
  await keys.close();
  await db.destroy();
});

await app.listen({ port: Number(env('PORT')), host: '127.0.0.1' });
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void app.close().then(() => process.exit(0));
  });
}
