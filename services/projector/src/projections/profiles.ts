// profiles: a user's display name, from ProfileRegistered in the user's profile stream.
import { PROFILE_REGISTERED, PROFILE_STREAMS, profileRegistered, profileUserOf } from '@connect/domain';
import { REDACTIONS_STREAM } from '@connect/ledger';
import type pg from 'pg';
import { type Projection, ProjectionError } from '../projection.ts';
import { type Columns, ident, insertRows, upsertOn } from '../sql.ts';
import { redactedStream } from './redactions.ts';

interface ProfileRow {
  user_id: string;
  display_name: string;
  registered_at: string | Date;
  redacted: boolean;
  last_index: number;
}

const columns: Columns<ProfileRow> = {
  user_id: 'text',
  display_name: 'text',
  registered_at: 'timestamptz',
  redacted: 'boolean',
  last_index: 'bigint',
};

export const REDACTED_NAME = '(redacted)';

/** When a user registered, as the read model has it. */
async function registeredAt(client: pg.ClientBase, table: string, userId: string): Promise<Date | undefined> {
  const { rows } = await client.query<{ registered_at: Date }>(
    `select registered_at from ${ident(table)} where user_id = $1`,
    [userId],
  );
  return rows[0]?.registered_at;
}

export const profilesProjection: Projection = {
  name: 'profiles',
  tables: ['profiles'],
  streams: [PROFILE_STREAMS, REDACTIONS_STREAM],
  async apply(client, entries, tables) {
    const rows = new Map<string, ProfileRow>();
    const redactedRow = (user_id: string, registered_at: string | Date, last_index: number): ProfileRow => ({
      user_id,
      display_name: REDACTED_NAME,
      registered_at,
      redacted: true,
      last_index,
    });
    for (const entry of entries) {
      const redactedUser = profileUserOf(redactedStream(entry) ?? '');
      if (redactedUser !== undefined) {
        const known =
          rows.get(redactedUser)?.registered_at ??
          (await registeredAt(client, tables.profiles as string, redactedUser));
        if (known) rows.set(redactedUser, redactedRow(redactedUser, known, entry.index));
        continue;
      }
      const userId = profileUserOf(entry.stream);
      if (userId === undefined || entry.type !== PROFILE_REGISTERED) continue;
      if (entry.data === null) {
        rows.set(userId, redactedRow(userId, entry.recordedAt, entry.index));
        continue;
      }
      const parsed = profileRegistered.safeParse(entry.data);
      if (!parsed.success) throw ProjectionError.of(entry.index, parsed.error);
      rows.set(userId, {
        user_id: userId,
        display_name: parsed.data.displayName,
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
