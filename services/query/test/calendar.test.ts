import ICAL from 'ical.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';
import { calendarOf, duration, escapeText, foldLine, utcDateTime } from '../src/calendar/ics.ts';

let s: Stack;
let ana: Account;
let ben: Account;
let cat: Account;
let lastWrite = 0;

const ORIGIN = 'test.connect.local/ledger';
const LONG_TITLE =
  'Paint the fence, both sides; then the gate \\ and the shed — “properly”, with two coats of white';

async function command(who: Account, url: string, payload: unknown = {}) {
  const response = await s.app.inject({ method: 'POST', url, payload: payload as object, headers: who.auth });
  if (response.statusCode >= 300) throw new Error(`${url}: ${response.statusCode} ${response.body}`);
  const receipt = response.json() as { commitmentId: string; events: { index: number }[] };
  lastWrite = Math.max(lastWrite, ...receipt.events.map((event) => event.index));
  return receipt;
}

const create = async (who: Account, body: object) =>
  (await command(who, '/v1/commitments', { type: 'personal', ...body })).commitmentId;

/** GET, waiting for the projector to have every write so far. */
function get(url: string, headers: Record<string, string> = {}) {
  return s.app.inject({
    method: 'GET',
    url,
    headers: { 'connect-min-index': String(lastWrite), ...headers },
  });
}

async function feedUrlOf(who: Account): Promise<string> {
  const response = await s.app.inject({ method: 'GET', url: '/v1/me/calendar', headers: who.auth });
  expect(response.statusCode).toBe(200);
  return (response.json() as { url: string }).url;
}

const pathOf = (url: string) => new URL(url).pathname;

function events(text: string) {
  const calendar = new ICAL.Component(ICAL.parse(text));
  expect(calendar.name).toBe('vcalendar');
  return calendar.getAllSubcomponents('vevent');
}

const byUid = (vevents: ICAL.Component[], id: string) =>
  vevents.find((event) => event.getFirstPropertyValue('uid') === `${id}@${ORIGIN}`);

let fence: string;
let loan: string;
let dropped: string;
let someday: string;
let catsOwn: string;

beforeAll(async () => {
  s = await testStack({ minIndexWaitMs: 3000 });
  ana = await signUp(s.app, 'Ana');
  ben = await signUp(s.app, 'Ben');
  cat = await signUp(s.app, 'Cat');
  fence = await create(ana, {
    title: LONG_TITLE,
    description: 'Line one\nline two',
    dueAt: '2031-06-01T12:00:00.000Z',
  });
  await command(ana, `/v1/commitments/${fence}/invite`, { userId: ben.userId, role: 'participant' });
  await command(ana, `/v1/commitments/${fence}/propose`);
  await command(ben, `/v1/commitments/${fence}/accept`);
  loan = await create(ana, { title: 'Return the ladder', dueAt: '2031-07-01T09:30:00.000Z' });
  dropped = await create(ana, { title: 'Dropped plan', dueAt: '2031-08-01T00:00:00.000Z' });
  await command(ana, `/v1/commitments/${dropped}/cancel`, { reason: 'not needed' });
  someday = await create(ana, { title: 'Someday' });
  catsOwn = await create(cat, { title: 'Cat’s own', dueAt: '2031-06-15T00:00:00.000Z' });
});
afterAll(() => s.close());

describe('the calendar feed', () => {
  it('serves exactly the user’s commitments with a due date, as RFC 5545 events', async () => {
    const url = await feedUrlOf(ana);
    expect(url).toMatch(/^http:\/\/[^/]+\/v1\/calendar\/[A-Za-z0-9_-]{43}\.ics$/);
    const response = await get(pathOf(url));
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/calendar; charset=utf-8');
    expect(response.body).toMatch(/^BEGIN:VCALENDAR\r\n/);
    expect(response.body.split('\r\n').every((line) => Buffer.byteLength(line) <= 75)).toBe(true);
    expect(response.body.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);

    const vevents = events(response.body);
    const uids = vevents.map((event) => event.getFirstPropertyValue('uid')).sort();
    expect(uids).toEqual([fence, loan, dropped].map((id) => `${id}@${ORIGIN}`).sort());
    expect(byUid(vevents, someday)).toBeUndefined();
    expect(byUid(vevents, catsOwn)).toBeUndefined();

    const event = byUid(vevents, fence) as ICAL.Component;
    expect(event.getFirstPropertyValue('summary')).toBe(LONG_TITLE);
    const { version } = (await get(`/v1/commitments/${fence}`, ana.auth)).json() as { version: number };
    expect(version).toBe(5); // drafted, invited, proposed, accepted, activated
    expect(event.getFirstPropertyValue('sequence')).toBe(version);
    expect(event.getFirstPropertyValue('status')).toBe('CONFIRMED');
    const start = event.getFirstPropertyValue('dtstart') as ICAL.Time;
    expect(start.zone?.tzid).toBe('UTC');
    expect(start.toJSDate().toISOString()).toBe('2031-06-01T12:00:00.000Z');
    expect(event.getFirstPropertyValue('url')).toBe(`http://localhost:5173/commitments/${fence}`);
    const description = String(event.getFirstPropertyValue('description'));
    expect(description).toContain('Line one\nline two');
    expect(description).toContain('With Ben (participant)');
    const attendees = event.getAllProperties('attendee');
    expect(
      attendees.map((a) => [a.getParameter('cn'), a.getParameter('partstat'), a.getFirstValue()]),
    ).toEqual([['Ben', 'ACCEPTED', `urn:uuid:${ben.userId}`]]);

    const alarms = event.getAllSubcomponents('valarm');
    expect(
      alarms.map((alarm) => (alarm.getFirstPropertyValue('trigger') as ICAL.Duration).toSeconds()),
    ).toEqual([-7 * 86400, -86400, -3600]);
    expect(alarms.map((alarm) => alarm.getFirstPropertyValue('action'))).toEqual([
      'DISPLAY',
      'DISPLAY',
      'DISPLAY',
    ]);
    expect(alarms[1]?.getFirstPropertyValue('description')).toBe(`Due in 1 day: ${LONG_TITLE}`);
  });

  it('shows a cancelled commitment as STATUS:CANCELLED, without reminders', async () => {
    const vevents = events((await get(pathOf(await feedUrlOf(ana)))).body);
    const event = byUid(vevents, dropped) as ICAL.Component;
    expect(event.getFirstPropertyValue('status')).toBe('CANCELLED');
    expect(event.getFirstPropertyValue('sequence')).toBe(2);
    expect(event.getAllSubcomponents('valarm')).toEqual([]);
    expect(byUid(vevents, loan)?.getFirstPropertyValue('status')).toBe('TENTATIVE');
  });

  it('gives each user their own feed: Ben sees the shared commitment, naming Ana', async () => {
    const url = await feedUrlOf(ben);
    expect(url).not.toBe(await feedUrlOf(ana));
    const vevents = events((await get(pathOf(url))).body);
    expect(vevents.map((event) => event.getFirstPropertyValue('uid'))).toEqual([`${fence}@${ORIGIN}`]);
    const [attendee] = vevents[0]?.getAllProperties('attendee') ?? [];
    expect(attendee?.getParameter('cn')).toBe('Ana');
  });

  it('shows the same URL again until rotated', async () => {
    expect(await feedUrlOf(ana)).toBe(await feedUrlOf(ana));
  });

  it('answers 304 to If-None-Match with its ETag, and a new ETag once a commitment changes', async () => {
    const path = pathOf(await feedUrlOf(ana));
    const first = await get(path);
    const etag = String(first.headers.etag);
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{43}"$/);
    const again = await get(path, { 'if-none-match': etag });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    await command(ana, `/v1/commitments/${loan}/update`, { title: 'Return the long ladder' });
    const changed = await get(path, { 'if-none-match': etag });
    expect(changed.statusCode).toBe(200);
    expect(changed.headers.etag).not.toBe(etag);
    const event = byUid(events(changed.body), loan);
    expect(event?.getFirstPropertyValue('summary')).toBe('Return the long ladder');
    expect(event?.getFirstPropertyValue('sequence')).toBe(2);
  });

  it('rotating issues a new URL and the old one is gone (404)', async () => {
    const old = pathOf(await feedUrlOf(cat));
    expect((await get(old)).statusCode).toBe(200);
    const rotated = await s.app.inject({ method: 'POST', url: '/v1/me/calendar/rotate', headers: cat.auth });
    expect(rotated.statusCode).toBe(200);
    const fresh = pathOf((rotated.json() as { url: string }).url);
    expect(fresh).not.toBe(old);
    const gone = await get(old);
    expect(gone.statusCode).toBe(404);
    expect(gone.headers['content-type']).toContain('application/problem+json');
    expect((await get(fresh)).statusCode).toBe(200);
    expect(pathOf(await feedUrlOf(cat))).toBe(fresh);
  });

  it('answers 404 problem+json to unknown or malformed tokens', async () => {
    for (const token of ['A'.repeat(43), 'short', `${'A'.repeat(42)}%2F`, 'A'.repeat(44)]) {
      const response = await get(`/v1/calendar/${token}.ics`);
      expect(response.statusCode, token).toBe(404);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json()).toMatchObject({ status: 404 });
    }
  });

  it('needs a signed-in caller to show or rotate a feed URL', async () => {
    expect((await s.app.inject({ method: 'GET', url: '/v1/me/calendar' })).statusCode).toBe(401);
    expect((await s.app.inject({ method: 'POST', url: '/v1/me/calendar/rotate' })).statusCode).toBe(401);
  });
});

describe('one commitment’s .ics', () => {
  it('is served to a party', async () => {
    const response = await get(`/v1/commitments/${fence}/calendar.ics`, ben.auth);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/calendar; charset=utf-8');
    const [event, ...more] = events(response.body);
    expect(more).toEqual([]);
    expect(event?.getFirstPropertyValue('uid')).toBe(`${fence}@${ORIGIN}`);
    expect(event?.getAllSubcomponents('valarm')).toHaveLength(3);
    const etag = String(response.headers.etag);
    const again = await get(`/v1/commitments/${fence}/calendar.ics`, { ...ben.auth, 'if-none-match': etag });
    expect(again.statusCode).toBe(304);
  });

  it('is not there for a stranger, without a token, or without a due date', async () => {
    const stranger = await get(`/v1/commitments/${fence}/calendar.ics`, cat.auth);
    expect(stranger.statusCode).toBe(404);
    expect(stranger.headers['content-type']).toContain('application/problem+json');
    expect((await get(`/v1/commitments/${fence}/calendar.ics`)).statusCode).toBe(401);
    expect((await get(`/v1/commitments/${someday}/calendar.ics`, ana.auth)).statusCode).toBe(404);
  });

  it('refuses an id that is no UUID at once, without waiting for an index not yet projected', async () => {
    const started = performance.now();
    const response = await get('/v1/commitments/not-a-uuid/calendar.ics', {
      ...ana.auth,
      'connect-min-index': '999999999',
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().errors).toEqual([expect.objectContaining({ path: 'path.id' })]);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

describe('the iCalendar text', () => {
  it('escapes TEXT, folds at 75 octets without splitting characters, writes UTC times and durations', () => {
    expect(escapeText('a,b;c\\d\r\ne\nf')).toBe('a\\,b\\;c\\\\d\\ne\\nf');
    const line = `SUMMARY:${'é'.repeat(60)}`;
    const folded = foldLine(line);
    const parts = folded.split('\r\n');
    expect(parts.every((part) => Buffer.byteLength(part) <= 75)).toBe(true);
    expect(parts.slice(1).every((part) => part.startsWith(' '))).toBe(true);
    expect(parts.map((part, i) => (i === 0 ? part : part.slice(1))).join('')).toBe(line);
    expect(utcDateTime('2031-06-01T14:00:00.000+02:00')).toBe('20310601T120000Z');
    expect([604800, 86400, 3600, 1800, 90061].map(duration)).toEqual([
      'P7D',
      'P1D',
      'PT1H',
      'PT30M',
      'P1DT1H1M1S',
    ]);
  });

  it('round-trips awkward titles through ical.js', () => {
    const title = 'Zahlung, Teil 1; “Miete” \\ März\nzweite Zeile 🎉'.repeat(3);
    const text = calendarOf(
      [
        {
          id: '0b6f8a52-3c1e-4d7a-9f43-2f5d8c9e7a10',
          type: 'personal',
          title,
          description: '',
          terms: '',
          amount: null,
          dueAt: '2031-06-01T12:00:00.000Z',
          status: 'active',
          overdue: false,
          version: 3,
          createdAt: '2031-05-01T09:30:00.000Z',
          updatedAt: '2031-05-01T10:02:00.000Z',
          parties: [{ userId: 'u1', displayName: 'Ana "A", B; C', role: 'creator', response: 'accepted' }],
          documents: [],
          pendingAmendment: null,
        },
      ],
      { origin: ORIGIN, appUrl: 'https://app.example', reminderOffsets: [5400], viewer: 'u2' },
    );
    const [event] = events(text);
    expect(event?.getFirstPropertyValue('summary')).toBe(title);
    expect(event?.getFirstProperty('attendee')?.getParameter('cn')).toBe('Ana A, B; C');
    expect(
      (
        event?.getFirstSubcomponent('valarm')?.getFirstPropertyValue('trigger') as ICAL.Duration | undefined
      )?.toSeconds(),
    ).toBe(-5400);
  });
});
