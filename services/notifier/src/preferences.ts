// Which notifications a person wants on which channel: a default for every channel × kind, and
// the choices the person made (table notification_preferences) over it.
import type { Database } from '@connect/db';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { CHANNELS, type Channel, NOTIFICATION_KINDS, type NotificationKind } from './notification.ts';

export type Preferences = Record<Channel, Record<NotificationKind, boolean>>;
export type PreferenceChanges = Partial<Record<Channel, Partial<Record<NotificationKind, boolean>>>>;

const EMAIL_BY_DEFAULT: ReadonlySet<NotificationKind> = new Set(['invitation', 'dispute', 'reminder']);

/**
 * In-app: always. Email: invitations, disputes and reminders. Push: everything (it reaches only
 * devices that subscribed). SMS: nothing until the person opts in, and then only reminders.
 */
export function defaultPreference(channel: Channel, kind: NotificationKind): boolean {
  switch (channel) {
    case 'inapp':
      return true;
    case 'email':
      return EMAIL_BY_DEFAULT.has(kind);
    case 'push':
      return true;
    case 'sms':
      return false;
  }
}

/** Why a channel cannot be set so for a kind, or undefined when it can. */
export function refusal(channel: Channel, kind: NotificationKind, enabled: boolean): string | undefined {
  if (channel === 'inapp' && !enabled) return 'in-app notifications cannot be turned off';
  if (channel === 'sms' && kind !== 'reminder' && enabled) return 'SMS carries reminders only';
  return undefined;
}

/** The full matrix: each stored choice over the defaults (unknown channels or kinds are ignored). */
export function applyChoices(
  choices: readonly { channel: string; kind: string; enabled: boolean }[],
): Preferences {
  const matrix = Object.fromEntries(
    CHANNELS.map((channel) => [
      channel,
      Object.fromEntries(NOTIFICATION_KINDS.map((kind) => [kind, defaultPreference(channel, kind)])),
    ]),
  ) as Preferences;
  for (const { channel, kind, enabled } of choices) {
    if (!isChannel(channel) || !isKind(kind) || refusal(channel, kind, enabled)) continue;
    matrix[channel][kind] = enabled;
  }
  return matrix;
}

const isChannel = (value: string): value is Channel => (CHANNELS as readonly string[]).includes(value);
const isKind = (value: string): value is NotificationKind =>
  (NOTIFICATION_KINDS as readonly string[]).includes(value);

function channelSchema(channel: Channel) {
  return z
    .object(
      Object.fromEntries(
        NOTIFICATION_KINDS.map((kind) => [
          kind,
          z
            .boolean()
            .optional()
            .superRefine((enabled, ctx) => {
              const reason = enabled === undefined ? undefined : refusal(channel, kind, enabled);
              if (reason) ctx.addIssue({ code: 'custom', message: reason });
            }),
        ]),
      ) as Record<NotificationKind, z.ZodOptional<z.ZodBoolean>>,
    )
    .strict();
}

/** A PUT body: any part of the matrix; unknown channels and kinds are refused. */
export const preferenceChangesSchema = z
  .object(
    Object.fromEntries(CHANNELS.map((channel) => [channel, channelSchema(channel).optional()])) as Record<
      Channel,
      z.ZodOptional<ReturnType<typeof channelSchema>>
    >,
  )
  .strict();

export async function preferencesFor(db: Kysely<Database>, userId: string): Promise<Preferences> {
  const rows = await db
    .selectFrom('notification_preferences')
    .select(['channel', 'kind', 'enabled'])
    .where('user_id', '=', userId)
    .execute();
  return applyChoices(rows);
}

/** Whether a person wants this kind of notification on this channel. */
export async function wants(
  db: Kysely<Database>,
  userId: string,
  channel: Channel,
  kind: NotificationKind,
): Promise<boolean> {
  const row = await db
    .selectFrom('notification_preferences')
    .select('enabled')
    .where('user_id', '=', userId)
    .where('channel', '=', channel)
    .where('kind', '=', kind)
    .executeTakeFirst();
  return row?.enabled ?? defaultPreference(channel, kind);
}

/** Records the person's choices (validated by preferenceChangesSchema) and answers the full matrix. */
export async function setPreferences(
  db: Kysely<Database>,
  userId: string,
  changes: PreferenceChanges,
): Promise<Preferences> {
  const rows = CHANNELS.flatMap((channel) =>
    Object.entries(changes[channel] ?? {})
      .filter((entry): entry is [string, boolean] => typeof entry[1] === 'boolean')
      .map(([kind, enabled]) => ({ user_id: userId, channel, kind, enabled })),
  );
  if (rows.length > 0) {
    await db
      .insertInto('notification_preferences')
      .values(rows)
      .onConflict((oc) =>
        oc.columns(['user_id', 'channel', 'kind']).doUpdateSet((eb) => ({
          enabled: eb.ref('excluded.enabled'),
          updated_at: new Date(),
        })),
      )
      .execute();
  }
  return preferencesFor(db, userId);
}
