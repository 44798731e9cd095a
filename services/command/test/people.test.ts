import { randomUUID } from 'node:crypto';
import type { Database } from '@connect/db';
import { Kysely, PostgresDialect } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFacts } from '../src/commitments/people.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

describe('the people a command concerns, read together', () => {
  let t: TestApp;
  let ana: Account;
  let ben: Account;
  let cara: Account;

  beforeAll(async () => {
    t = await testApp();
    ana = await signUp(t.app, 'Ana');
    ben = await signUp(t.app, 'Ben');
    cara = await signUp(t.app, 'Cara');
    await t.database.pool.query('update users set email_verified_at = now() where id = $1', [ana.userId]);
    await t.database.pool.query("insert into user_roles (user_id, role) values ($1, 'admin')", [ben.userId]);
    await t.database.pool.query('update users set erased_at = now() where id = $1', [cara.userId]);
  });
  afterAll(() => t.close());

  it('answers each caller its own people, erased and unknown ones left out, in one statement', async () => {
    let statements = 0;
    // Over the test database's pool, which it does not own (so not destroyed).
    const db = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: t.database.pool }),
      log: (event) => {
        if (event.level === 'query') statements++;
      },
    });
    const unknown = randomUUID();
    const [forAna, forBen, forCara, forUnknown, forBoth] = await Promise.all([
      readFacts(db, [ana.userId]),
      readFacts(db, [ben.userId]),
      readFacts(db, [cara.userId]),
      readFacts(db, [unknown]),
      readFacts(db, [ana.userId, ben.userId, cara.userId]),
    ]);
    expect(statements).toBe(1);
    expect([...(forAna ?? [])]).toEqual([[ana.userId, { emailVerified: true, roles: [] }]]);
    expect([...(forBen ?? [])]).toEqual([[ben.userId, { emailVerified: false, roles: ['admin'] }]]);
    expect(forCara?.size).toBe(0);
    expect(forUnknown?.size).toBe(0);
    expect([...(forBoth?.keys() ?? [])].sort()).toEqual([ana.userId, ben.userId].sort());
  });
});
