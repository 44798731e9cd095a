// profiles: a user's display name, from ProfileRegistered in the user's profile stream.
import { profileRegistered } from '@connect/domain';
import type pg from 'pg';
import { type Projection, ProjectionError } from '../projection.ts';
import { ident, insertRows, upsertOn } from '../sql.ts';
import { redactedStream } from './redactions.ts';

const columns = [
  { name: 'user_id', type: 'text' },
  { name: 'display_name', type: 'text' },
  { name: 'registered_at', type: 'timestamptz' },
  { name: 'redacted', type: 'boolean' },
  { name: 'last_index', type: 'bigint' },
] as const;

export const REDACTED_NAME = '(redacted)';

async function currentRow(
  client: pg.ClientBase,
  table: string,
  userId: string,
): Promise<unknown[] | undefined> {
  const { rows } = await client.query(`select registered_at from ${ident(table)} where user_id = $1`, [
    userId,
  ]);
  return rows[0] ? [userId, null, rows[0].registered_at] : undefined;
}

export const profilesProjection: Projection = {
  name: 'profiles',
  tables: ['profiles'],
  streams: ['profile-%', 'redactions'],
  async apply(client, entries, tables) {
    const rows = new Map<string, unknown[]>();
    for (const entry of entries) {
      const redacted = redactedStream(entry);
      if (redacted?.startsWith('profile-')) {
        const userId = redacted.slice('profile-'.length);
        const known = rows.get(userId) ?? (await currentRow(client, tables.profiles as string, userId));
        if (known) rows.set(userId, [userId, REDACTED_NAME, known[2], true, entry.index]);
        continue;
      }
      if (entry.type !== 'ProfileRegistered') continue;
      const userId = entry.stream.slice('profile-'.length);
      if (entry.data === null) {
        rows.set(userId, [userId, REDACTED_NAME, entry.recordedAt, true, entry.index]);
        continue;
      }
      const parsed = profileRegistered.safeParse(entry.data);
      if (!parsed.success) throw ProjectionError.of(entry.index, parsed.error);
      rows.set(userId, [userId, parsed.data.displayName, entry.recordedAt, false, entry.index]);
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
