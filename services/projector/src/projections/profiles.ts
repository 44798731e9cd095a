// profiles: a user's display name, from ProfileRegistered in the user's profile stream.
import { profileRegistered } from '@connect/domain';
import { type Projection, ProjectionError } from '../projection.ts';
import { insertRows, upsertOn } from '../sql.ts';

const columns = [
  { name: 'user_id', type: 'text' },
  { name: 'display_name', type: 'text' },
  { name: 'registered_at', type: 'timestamptz' },
  { name: 'redacted', type: 'boolean' },
  { name: 'last_index', type: 'bigint' },
] as const;

export const REDACTED_NAME = '(redacted)';

export const profilesProjection: Projection = {
  name: 'profiles',
  tables: ['profiles'],
  async apply(client, entries, tables) {
    const rows = new Map<string, unknown[]>();
    for (const entry of entries) {
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
