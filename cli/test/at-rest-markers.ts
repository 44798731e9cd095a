// What the encryption-at-rest tests write and look for: unique marker strings in every kind of
// sensitive data (emails, a commitment's title, description and terms, a document's name and
// bytes, an invitation by email, a decline reason, notifications), a display name as the control
// that the search does find plain text, and the searches of a dump and of files.
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, vi } from 'vitest';
import { type Answer, call } from './running-connect.ts';

const PASSWORD = 'a long password';

/** A string found nowhere unless written there. */
const marker = (what: string) => `${what}${randomBytes(9).toString('hex')}`;

export const newMarkers = () => ({
  anaEmail: marker('anamail'),
  benEmail: marker('benmail'),
  inviteeEmail: marker('invitee'),
  title: marker('title'),
  description: marker('description'),
  terms: marker('iban'),
  documentName: marker('docname'),
  documentBytes: marker('docbytes'),
  reason: marker('reason'),
});
export type Markers = ReturnType<typeof newMarkers>;
/** Display names are not sealed (every party sees them): the control that a search finds plain text. */
export const newControl = () => marker('displayname');

export interface Account {
  id: string;
  token: string;
}

type Service = { url: string };

async function signUp(service: Service, email: string, displayName: string): Promise<Account> {
  const answer = await call(service, 'POST', '/v1/auth/signup', {
    body: { email: `${email}@at-rest.test`, password: PASSWORD, displayName },
  });
  expect(answer.status).toBe(201);
  return { id: (answer.body.user as { id: string }).id, token: answer.body.access_token as string };
}

const lastIndex = (answer: Answer) =>
  (answer.body.events as { index: number }[] | undefined)?.at(-1)?.index ?? 0;

/**
 * Writes every marker through the API (Ana's commitment with a document, invitations of Ben and
 * of an address, Ben's decline with a reason, the notifications these make), then reads each back:
 * it is all there, only sealed. Returns Ana and the commitment.
 */
export async function writeMarkers(
  service: Service,
  markers: Markers,
  control: string,
): Promise<{ ana: Account; commitmentId: string }> {
  const command = async (who: Account, url: string, body: unknown = {}) => {
    const answer = await call(service, 'POST', url, { body, token: who.token });
    expect(answer.status, `${url}: ${JSON.stringify(answer.body)}`).toBeLessThan(300);
    return lastIndex(answer);
  };
  const ana = await signUp(service, markers.anaEmail, `Ana ${control}`);
  const ben = await signUp(service, markers.benEmail, 'Ben');
  const created = await call(service, 'POST', '/v1/commitments', {
    token: ana.token,
    body: {
      type: 'personal',
      title: markers.title,
      description: markers.description,
      terms: `Pay to ${markers.terms}`,
    },
  });
  expect(created.status).toBe(201);
  const id = created.body.commitmentId as string;
  const form = new FormData();
  form.append('name', `${markers.documentName}.txt`);
  form.append('file', new Blob([`the agreement: ${markers.documentBytes}`], { type: 'text/plain' }), 'a.txt');
  const uploaded = await fetch(`${service.url}/v1/commitments/${id}/documents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ana.token}` },
    body: form,
  });
  expect(uploaded.status).toBe(201);
  await command(ana, `/v1/commitments/${id}/invite`, { userId: ben.id, role: 'participant' });
  await command(ana, `/v1/commitments/${id}/invite`, {
    email: `${markers.inviteeEmail}@at-rest.test`,
    role: 'witness',
  });
  await command(ana, `/v1/commitments/${id}/propose`);
  const declined = await command(ben, `/v1/commitments/${id}/decline`, { reason: markers.reason });

  const read = await fetch(`${service.url}/v1/commitments/${id}`, {
    headers: { authorization: `Bearer ${ana.token}`, 'connect-min-index': String(declined) },
  });
  const commitment = (await read.json()) as Record<string, unknown>;
  expect(commitment).toMatchObject({
    title: markers.title,
    description: markers.description,
    terms: `Pay to ${markers.terms}`,
    documents: [expect.objectContaining({ name: `${markers.documentName}.txt` })],
  });
  const history = await call(service, 'GET', `/v1/commitments/${id}/history`, { token: ana.token });
  expect(JSON.stringify(history.body)).toContain(markers.reason);
  const documentId = (commitment.documents as { documentId: string }[])[0]?.documentId;
  const content = await fetch(`${service.url}/v1/commitments/${id}/documents/${documentId}/content`, {
    headers: { authorization: `Bearer ${ana.token}` },
  });
  expect(await content.text()).toContain(markers.documentBytes);
  await vi.waitFor(
    async () => {
      const notifications = await call(service, 'GET', '/v1/notifications', { token: ben.token });
      expect(JSON.stringify(notifications.body)).toContain(markers.title);
    },
    { timeout: 20_000, interval: 200 },
  );
  const me = await call(service, 'GET', '/v1/auth/me', { token: ben.token });
  expect(JSON.stringify(me.body)).toContain(markers.benEmail);
  return { ana, commitmentId: id };
}

/** The markers found in `text`, as text or as hex (how a dump writes bytea), each with what is around it. */
export function markersIn(text: string, markers: Record<string, string>): string[] {
  const hex = (value: string) => Buffer.from(value).toString('hex');
  return Object.entries(markers).flatMap(([name, needle]) => {
    const at = text.indexOf(needle);
    if (at >= 0) return [`${name}: …${text.slice(Math.max(0, at - 120), at + needle.length + 40)}…`];
    return text.includes(hex(needle)) ? [`${name}: as bytes`] : [];
  });
}

/** Which of `needles` appear in which file under `dirs` (paths relative to `base`). */
export async function foundInFiles(
  dirs: string[],
  needles: Record<string, string>,
  base: string,
): Promise<Record<string, string[]>> {
  const found: Record<string, string[]> = {};
  for (const dir of dirs) {
    const entries = await readdir(dir, { withFileTypes: true, recursive: true });
    for (const entry of entries.filter((e) => e.isFile())) {
      const file = path.join(entry.parentPath, entry.name);
      const bytes = await readFile(file).catch(() => undefined); // a file the server removed meanwhile
      if (!bytes) continue;
      for (const [name, needle] of Object.entries(needles)) {
        if (bytes.includes(needle)) found[name] = [...(found[name] ?? []), path.relative(base, file)];
      }
    }
  }
  return found;
}
