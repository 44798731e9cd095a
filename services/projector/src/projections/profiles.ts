// profiles: a user's display name and picture, from ProfileRegistered and then ProfileUpdated in the
// user's profile stream (each holds the whole profile after it). A redacted profile stays redacted.
// An erased user (UserErased, in the erasures stream) is shown as "(erased user)", with no picture.
import {
  ERASED_USER_NAME,
  ERASURES_STREAM,
  PROFILE_REGISTERED,
  PROFILE_STREAMS,
  PROFILE_UPDATED,
  profileRegistered,
  profileUpdated,
  profileUserOf,
  USER_ERASED,
  userErased,
} from '@connect/domain';
import { REDACTIONS_STREAM } from '@connect/ledger';
import type pg from 'pg';
import { type Projection, ProjectionError } from '../projection.ts';
import { type Columns, ident, insertRows, upsertOn } from '../sql.ts';
import { redactedStream } from './redactions.ts';

interface ProfileRow {
  user_id: string;
  display_name: string;
  avatar_url: string | null;
  registered_at: string | Date;
  redacted: boolean;
  last_index: number;
}

const columns: Columns<ProfileRow> = {
  user_id: 'text',
  display_name: 'text',
  avatar_url: 'text',
  registered_at: 'timestamptz',
  redacted: 'boolean',
  last_index: 'bigint',
};

export const REDACTED_NAME = '(redacted)';

/** A user's profile as the read model has it. */
async function storedProfile(
  client: pg.ClientBase,
  table: string,
  userId: string,
): Promise<Pick<ProfileRow, 'registered_at' | 'redacted'> | undefined> {
  const { rows } = await client.query<{ registered_at: Date; redacted: boolean }>(
    `select registered_at, redacted from ${ident(table)} where user_id = $1`,
    [userId],
  );
  return rows[0];
}

export const profilesProjection: Projection = {
  name: 'profiles',
  tables: ['profiles'],
  streams: [PROFILE_STREAMS, REDACTIONS_STREAM, ERASURES_STREAM],
  async apply(client, entries, tables) {
    const rows = new Map<string, ProfileRow>();
    const redactedRow = (user_id: string, registered_at: string | Date, last_index: number): ProfileRow => ({
      user_id,
      display_name: REDACTED_NAME,
      avatar_url: null,
      registered_at,
      redacted: true,
      last_index,
    });
    for (const entry of entries) {
      if (entry.stream === ERASURES_STREAM) {
        if (entry.type !== USER_ERASED || entry.data === null) continue;
        const erased = userErased.safeParse(entry.data);
        if (!erased.success) throw ProjectionError.of(entry.index, erased.error);
        const { userId } = erased.data;
        const known =
          rows.get(userId)?.registered_at ??
          (await storedProfile(client, tables.profiles as string, userId))?.registered_at;
        rows.set(userId, {
          ...redactedRow(userId, known ?? entry.recordedAt, entry.index),
          display_name: ERASED_USER_NAME,
        });
        continue;
      }
      const redactedUser = profileUserOf(redactedStream(entry) ?? '');
      if (redactedUser !== undefined) {
        const known =
          rows.get(redactedUser)?.registered_at ??
          (await storedProfile(client, tables.profiles as string, redactedUser))?.registered_at;
        if (known) rows.set(redactedUser, redactedRow(redactedUser, known, entry.index));
        continue;
      }
      const userId = profileUserOf(entry.stream);
      if (userId === undefined) continue;
      if (entry.type === PROFILE_UPDATED) {
        const before = rows.get(userId) ?? (await storedProfile(client, tables.profiles as string, userId));
        if (!before)
          throw ProjectionError.of(entry.index, new Error('ProfileUpdated before ProfileRegistered'));
        if (before.redacted || entry.data === null) {
          rows.set(userId, redactedRow(userId, before.registered_at, entry.index));
          continue;
        }
        const updated = profileUpdated.safeParse(entry.data);
        if (!updated.success) throw ProjectionError.of(entry.index, updated.error);
        rows.set(userId, {
          user_id: userId,
          display_name: updated.data.displayName,
          avatar_url: updated.data.avatarUrl,
          registered_at: before.registered_at,
          redacted: false,
          last_index: entry.index,
        });
        continue;
      }
      if (entry.type !== PROFILE_REGISTERED) continue;
      if (entry.data === null) {
        rows.set(userId, redactedRow(userId, entry.recordedAt, entry.index));
        continue;
      }
      const parsed = profileRegistered.safeParse(entry.data);
      if (!parsed.success) throw ProjectionError.of(entry.index, parsed.error);
      rows.set(userId, {
        user_id: userId,
        display_name: parsed.data.displayName,
        avatar_url: null,
        registered_at: entry.recordedAt,
        redacted: false,
        last_index: entry.index,
      });
    }
    await insertRows(
      client,
      tables.profiles as string,
      columns,
      [...rows.values()],
      upsertOn('user_id', columns),
    );
  },
};
