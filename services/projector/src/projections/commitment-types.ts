// commitment_types: the types commitments can have, from CommitmentTypeDefined.
import { COMMITMENT_TYPES_STREAM, commitmentTypeSchema } from '@connect/domain';
import { type Projection, ProjectionError } from '../projection.ts';
import { insertRows, upsertOn } from '../sql.ts';

const columns = [
  { name: 'key', type: 'text' },
  { name: 'name', type: 'text' },
  { name: 'requires_amount', type: 'boolean' },
  { name: 'requires_due_date', type: 'boolean' },
  { name: 'min_witnesses', type: 'integer' },
  { name: 'last_index', type: 'bigint' },
] as const;

export const commitmentTypesProjection: Projection = {
  name: 'commitment_types',
  tables: ['commitment_types'],
  streams: [COMMITMENT_TYPES_STREAM],
  async apply(client, entries, tables) {
    const rows = new Map<string, unknown[]>();
    for (const entry of entries) {
      if (entry.stream !== COMMITMENT_TYPES_STREAM || entry.type !== 'CommitmentTypeDefined') continue;
      if (entry.data === null) continue; // a redacted definition leaves the type as it was
      const parsed = commitmentTypeSchema.safeParse(entry.data);
      if (!parsed.success) throw ProjectionError.of(entry.index, parsed.error);
      const type = parsed.data;
      rows.set(type.key, [
        type.key,
        type.name,
        type.requiresAmount,
        type.requiresDueDate,
        type.minWitnesses,
        entry.index,
      ]);
    }
    await insertRows(
      client,
      tables.commitment_types as string,
      columns,
      [...rows.values()],
      upsertOn('key', columns),
    );
  },
};
