// A due date passes: the system marks the active commitment overdue (DeadlineMissed), once, and
// the read models show it.

import { afterAll, beforeAll, expect, test } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { commandLanes } from '../../command/src/commitments/command-lanes.ts';
import { sweepDeadlines } from '../../command/src/commitments/deadlines.ts';
import { stateCache } from '../../command/src/commitments/state-cache.ts';
import { type Account, signUp } from '../../command/test/support.ts';

let s: Stack;
let ana: Account;
let ben: Account;

beforeAll(async () => {
  s = await testStack();
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
});
afterAll(() => s.close());

async function command(who: Account, url: string, payload: unknown = {}) {
  const response = await s.app.inject({ method: 'POST', url, payload: payload as object, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`);
  return response.json() as { commitmentId: string; events: { index: number }[] };
}

async function read(id: string, minIndex: number) {
  const response = await s.app.inject({
    method: 'GET',
    url: `/v1/commitments/${id}`,
    headers: { ...ana.auth, 'connect-min-index': String(minIndex) },
  });
  return response.json();
}

test('an active commitment past its due date is marked overdue by the system, once', async () => {
  const dueAt = new Date(Date.now() + 60 * 60 * 1000);
  const id = (
    await command(ana, '/v1/commitments', {
      type: 'personal',
      title: 'Return the book',
      dueAt: dueAt.toISOString(),
    })
  ).commitmentId;
  await command(ana, `/v1/commitments/${id}/invite`, { userId: ben.userId, role: 'participant' });
  await command(ana, `/v1/commitments/${id}/propose`);
  const accepted = await command(ben, `/v1/commitments/${id}/accept`);
  expect((await read(id, accepted.events.at(-1)?.index as number)).status).toBe('active');

  const deps = { ...s.command, states: stateCache(), lanes: commandLanes() };
  expect(await sweepDeadlines(deps, new Date(dueAt.getTime() - 1000))).toBe(0);
  const later = new Date(dueAt.getTime() + 1000);
  expect(await sweepDeadlines(deps, later)).toBe(1);

  const missed = await s.database.db
    .selectFrom('ledger_entries')
    .select(['index', 'actor', 'type'])
    .where('stream', '=', `commitment-${id}`)
    .orderBy('version', 'desc')
    .executeTakeFirstOrThrow();
  expect(missed).toMatchObject({ type: 'DeadlineMissed', actor: null });
  const after = await read(id, missed.index);
  expect(after).toMatchObject({ status: 'active', overdue: true });
  expect(await sweepDeadlines(deps, later)).toBe(0);
  const history = await s.app.inject({
    method: 'GET',
    url: `/v1/commitments/${id}/history`,
    headers: ana.auth,
  });
  expect(history.json().events.at(-1).summary).toMatch(/due date .* passed/);
});
