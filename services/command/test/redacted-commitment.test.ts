import { redactEntries } from '@connect/ledger';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { type Account, signUp, type TestApp, testApp } from './support.ts';

let t: TestApp;
let ana: Account;
let ben: Account;

beforeAll(async () => {
  t = await testApp();
  [ana, ben] = [await signUp(t.app, 'Ana'), await signUp(t.app, 'Ben')];
});
afterAll(() => t.close());

test('commands on a commitment keep working after one of its events is redacted and the service restarts', async () => {
  const post = (app: typeof t.app, url: string, who: Account, payload: object = {}) =>
    app.inject({ method: 'POST', url, payload, headers: who.auth });
  const created = await post(t.app, '/v1/commitments', ana, {
    type: 'personal',
    title: 'Lend Ben my bike',
    terms: 'Account 123',
  });
  const id = created.json().commitmentId as string;
  const updated = await post(t.app, `/v1/commitments/${id}/update`, ana, { terms: 'IBAN DE00 1234' });
  await redactEntries(
    { db: t.database.db, ledger: t.deps.ledger },
    { index: updated.json().events[0].index },
    { reason: 'erasure request', by: ana.userId },
  );

  // A new process: nothing cached, the commitment is replayed from the ledger as it stands.
  const restarted = buildApp(t.deps, { logLevel: 'silent' });
  await restarted.ready();
  try {
    const invited = await post(restarted, `/v1/commitments/${id}/invite`, ana, {
      userId: ben.userId,
      role: 'participant',
    });
    expect(invited.statusCode, invited.body).toBe(200);
    expect(invited.json().version).toBe(3);
    const proposed = await post(restarted, `/v1/commitments/${id}/propose`, ana);
    expect(proposed.statusCode, proposed.body).toBe(200);
    const accepted = await post(restarted, `/v1/commitments/${id}/accept`, ben);
    expect(accepted.statusCode, accepted.body).toBe(200);
  } finally {
    await restarted.close();
  }
});
