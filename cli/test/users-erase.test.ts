import { spawnSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { keyRing, localMasterKeys } from '@connect/db';
import { ERASURES_STREAM, profileStream, USER_ERASED } from '@connect/domain';
import { bodyCipher, readStream, streamKeySubject } from '@connect/ledger';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ORIGIN, projectorLedger, registerProfile } from '../../services/projector/test/support.ts';
import type { TestDatabase } from '../../test/support/database.ts';

const BIN = fileURLToPath(new URL('../bin/connect.js', import.meta.url));
let database: TestDatabase;
let dataDir: string;
let userId: string;

beforeAll(async () => {
  const setup = await projectorLedger();
  database = setup.database;
  // A profile written in the clear (before encryption at rest): the erasure redacts it.
  userId = await registerProfile(setup.ledger, 'Erin Quillfeather');
  await setup.ledger.drain();
  dataDir = setup.dataDir;
  await database.pool.query(
    `insert into users (id, email, password_hash, display_name) values ($1, 'erin@users.test', 'x', 'Erin Quillfeather')`,
    [userId],
  );
  await database.pool.query(
    `insert into phone_numbers (user_id, phone) values ($1, convert_to(to_json('+15550104242'::text)::text, 'UTF8'))`,
    [userId],
  );
  await database.pool.query(
    `insert into sessions (id, user_id, user_agent, address) values (gen_random_uuid(), $1, 'Quill browser', '203.0.113.9')`,
    [userId],
  );
});
afterAll(async () => {
  await database.close();
  await rm(dataDir, { recursive: true, force: true });
});

const users = (...args: string[]) =>
  spawnSync(process.execPath, [BIN, 'users', ...args], {
    env: {
      ...process.env,
      DATABASE_URL: database.url,
      CONNECT_DATA_DIR: dataDir,
      CONNECT_LEDGER_ORIGIN: ORIGIN,
      CONNECT_LEDGER_KEY: Buffer.alloc(32, 9).toString('base64'),
    },
    encoding: 'utf8',
  });

test('connect users erase EMAIL|ID erases the user once; a rerun by id finishes nothing twice', async () => {
  expect(users('erase').status).toBe(2);
  expect(users('erase', 'nobody@users.test').status).toBe(1);

  const erased = users('erase', 'ERIN@users.test');
  expect(erased.stderr).toBe('');
  expect(erased.status).toBe(0);
  expect(erased.stdout).toMatch(new RegExp(`user ${userId} is erased \\(ledger entry (\\d+)\\)`));
  const index = /ledger entry (\d+)/.exec(erased.stdout)?.[1];

  const { rows } = await database.pool.query(
    'select email, email_index, email_sealed, password_hash, display_name, erased_at from users where id = $1',
    [userId],
  );
  expect(rows[0]).toMatchObject({
    email: null,
    email_index: null,
    email_sealed: null,
    password_hash: null,
    display_name: '(erased user)',
    erased_at: expect.any(Date),
  });
  const dump = await database.pool.query<{ text: string }>(
    `select coalesce((select string_agg(t::text, '') from users t), '')
         || coalesce((select string_agg(t::text, '') from sessions t), '')
         || coalesce((select string_agg(t::text, '') from phone_numbers t), '')
         || coalesce((select string_agg(t::text, '') from ledger_entries t), '') as text`,
  );
  for (const marker of ['Quillfeather', 'erin@users.test', '+15550104242', 'Quill browser', '203.0.113.9'])
    expect(dump.rows[0]?.text).not.toContain(marker);
  const keys = await database.pool.query(
    'select subject from data_keys where subject = any($1) and wrapped_key is null and erased_at is not null',
    [[streamKeySubject(profileStream(userId)), `user:${userId}`]],
  );
  expect(keys.rowCount).toBe(2);

  // The email is gone: a rerun names the user by id, and records nothing twice.
  expect(users('erase', 'erin@users.test').status).toBe(1);
  const again = users('erase', userId);
  expect(again.status).toBe(0);
  expect(again.stdout).toContain(`(ledger entry ${index})`);

  const ring = keyRing(database.pool, await localMasterKeys({ dataDir }), { listen: false });
  try {
    const source = { origin: ORIGIN, cipher: bodyCipher(ring, { sealNew: false }) };
    const erasures = await readStream(database.db, source, ERASURES_STREAM);
    expect(erasures.map((e) => [e.type, e.actor, e.data])).toEqual([[USER_ERASED, null, { userId }]]);
    const profile = await readStream(database.db, source, profileStream(userId));
    expect(profile.map((e) => [e.data, e.redacted])).toEqual([[null, true]]);
  } finally {
    await ring.close();
  }
  const audit = spawnSync(process.execPath, [BIN, 'verify', 'ledger'], {
    env: {
      ...process.env,
      DATABASE_URL: database.url,
      CONNECT_LEDGER_ORIGIN: ORIGIN,
      CONNECT_DATA_DIR: dataDir,
    },
    encoding: 'utf8',
  });
  expect(audit.status).toBe(0);
}, 60_000);
