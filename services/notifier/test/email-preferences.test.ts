import { expect, test } from 'vitest';
import { CHANNELS, NOTIFICATION_KINDS } from '../src/notification.ts';
import { applyChoices, defaultPreference, preferenceChangesSchema, refusal } from '../src/preferences.ts';

test('by default: in-app everything, email invitations, disputes and reminders, push everything, no SMS', () => {
  const matrix = applyChoices([]);
  expect(Object.keys(matrix)).toEqual([...CHANNELS]);
  for (const kind of NOTIFICATION_KINDS) {
    expect(matrix.inapp[kind]).toBe(true);
    expect(matrix.push[kind]).toBe(true);
    expect(matrix.sms[kind]).toBe(false);
    expect(matrix.email[kind]).toBe(['invitation', 'dispute', 'reminder'].includes(kind));
  }
  expect(defaultPreference('email', 'lifecycle')).toBe(false);
});

test('a person’s choices override the defaults; choices that cannot hold are ignored', () => {
  const matrix = applyChoices([
    { channel: 'email', kind: 'reminder', enabled: false },
    { channel: 'email', kind: 'lifecycle', enabled: true },
    { channel: 'sms', kind: 'reminder', enabled: true },
    { channel: 'sms', kind: 'dispute', enabled: true },
    { channel: 'inapp', kind: 'dispute', enabled: false },
    { channel: 'fax', kind: 'dispute', enabled: true },
  ]);
  expect(matrix.email).toMatchObject({ reminder: false, lifecycle: true, invitation: true });
  expect(matrix.sms).toMatchObject({ reminder: true, dispute: false });
  expect(matrix.inapp.dispute).toBe(true);
  expect(matrix).not.toHaveProperty('fax');
});

test('in-app cannot be turned off, and SMS carries reminders only', () => {
  expect(refusal('inapp', 'invitation', false)).toMatch(/cannot be turned off/);
  expect(refusal('inapp', 'invitation', true)).toBeUndefined();
  expect(refusal('sms', 'invitation', true)).toMatch(/reminders only/);
  expect(refusal('sms', 'invitation', false)).toBeUndefined();
  expect(refusal('sms', 'reminder', true)).toBeUndefined();
});

test('a change names each bad field by its path', () => {
  expect(preferenceChangesSchema.parse({ email: { reminder: false } })).toEqual({
    email: { reminder: false },
  });
  const result = preferenceChangesSchema.safeParse({
    email: { reminder: 'no', gossip: true },
    sms: { dispute: true },
    fax: {},
  });
  expect(result.success).toBe(false);
  const issues = result.error?.issues.map((issue) => ({ path: issue.path.join('.'), code: issue.code }));
  expect(issues).toEqual(
    expect.arrayContaining([
      { path: 'email.reminder', code: 'invalid_type' },
      { path: 'email', code: 'unrecognized_keys' },
      { path: 'sms.dispute', code: 'custom' },
      { path: '', code: 'unrecognized_keys' },
    ]),
  );
});
