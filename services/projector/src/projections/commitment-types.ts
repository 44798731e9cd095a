// commitment_types: the types commitments can have, from CommitmentTypeDefined.
import { COMMITMENT_TYPE_DEFINED, COMMITMENT_TYPES_STREAM, commitmentTypeSchema } from '@connect/domain';
import { type Projection, ProjectionError } from '../projection.ts';
import { type Columns, insertRows, upsertOn } from '../sql.ts';

interface TypeRow {
  key: string;
  name: string;
  requires_amount: boolean;
  requires_due_date: boolean;
  min_witnesses: number;
  created_by: string;
  witnesses_must_be_verified: boolean;
  last_index: number;
}

const columns: Columns<TypeRow> = {
  key: 'text',
  name: 'text',
  requires_amount: 'boolean',
  requires_due_date: 'boolean',
  min_witnesses: 'integer',
  created_by: 'text',
  witnesses_must_be_verified: 'boolean',
  last_index: 'bigint',
};

export const commitmentTypesProjection: Projection = {
  name: 'commitment_types',
  tables: ['commitment_types'],
  streams: [COMMITMENT_TYPES_STREAM],
  async apply(client, entries, tables) {
    const rows = new Map<string, TypeRow>();
    for (const entry of entries) {
      if (entry.stream !== COMMITMENT_TYPES_STREAM || entry.type !== COMMITMENT_TYPE_DEFINED) continue;
      if (entry.data === null) continue; // a redacted definition leaves the type as it was
      const parsed = commitmentTypeSchema.safeParse(entry.data);
      if (!parsed.success) throw ProjectionError.of(entry.index, parsed.error);
      const type = parsed.data;
      rows.set(type.key, {
        key: type.key,
        name: type.name,
        requires_amount: type.requiresAmount,
        requires_due_date: type.requiresDueDate,
        min_witnesses: type.minWitnesses,
        created_by: type.createdBy ?? 'anyone',
        witnesses_must_be_verified: type.witnessesMustBeVerified ?? false,
        last_index: entry.index,
      });
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
