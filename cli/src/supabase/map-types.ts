// Supabase commitment_types → type definitions (CommitmentTypeDefined). Pure: no I/O.
import { type CommitmentType, commitmentTypeSchema } from '@connect/domain';
import type { SourceType } from './source.ts';

/** The config keys the app used, and the field of a type definition each one is. */
const CONFIG_KEYS = {
  requires_amount: 'requiresAmount',
  requires_due_date: 'requiresDueDate',
  min_witnesses: 'minWitnesses',
} as const;

export type TypeDecision =
  | { outcome: 'import'; sourceId: string; type: CommitmentType; reasons: string[] }
  | { outcome: 'failed'; sourceId: string; reasons: string[] };

/** A type's key from its source name: lower case, dashes for anything else. */
export const typeKeyOf = (name: string) =>
  name
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 50);

export function mapType(source: SourceType): TypeDecision {
  const reasons: string[] = [];
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(source.config ?? {})) {
    const field = CONFIG_KEYS[key as keyof typeof CONFIG_KEYS];
    if (field) fields[field] = value;
    else reasons.push(`unknown config key "${key}" left out`);
  }
  const name = source.name.trim();
  const parsed = commitmentTypeSchema.safeParse({
    key: typeKeyOf(name),
    name: name.charAt(0).toUpperCase() + name.slice(1),
    ...fields,
  });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'type'}: ${i.message}`);
    return { outcome: 'failed', sourceId: source.id, reasons: problems };
  }
  return { outcome: 'import', sourceId: source.id, type: parsed.data, reasons };
}

/** Whether two definitions say the same (then the existing one is kept). */
export const sameType = (a: CommitmentType, b: CommitmentType) =>
  a.requiresAmount === b.requiresAmount &&
  a.requiresDueDate === b.requiresDueDate &&
  a.minWitnesses === b.minWitnesses;
