// Commitment types configure behaviour: a type can require an amount, a due date, N witnesses.
import { z } from 'zod';

export const commitmentTypeSchema = z
  .object({
    key: z.string().regex(/^[a-z][a-z0-9-]{0,49}$/, 'lowercase letters, digits and dashes'),
    name: z.string().trim().min(1).max(100),
    requiresAmount: z.boolean().default(false),
    requiresDueDate: z.boolean().default(false),
    minWitnesses: z.number().int().min(0).max(20).default(0),
  })
  .strict();

export type CommitmentType = z.infer<typeof commitmentTypeSchema>;

export const COMMITMENT_TYPES_STREAM = 'commitment-types';
/** The event that defines (or redefines) a type in the types stream; its data is a CommitmentType. */
export const COMMITMENT_TYPE_DEFINED = 'CommitmentTypeDefined';

/** The types a new ledger starts with. */
export const DEFAULT_TYPES: CommitmentType[] = [
  { key: 'personal', name: 'Personal', requiresAmount: false, requiresDueDate: false, minWitnesses: 0 },
  { key: 'business', name: 'Business', requiresAmount: false, requiresDueDate: true, minWitnesses: 0 },
  { key: 'financial', name: 'Financial', requiresAmount: true, requiresDueDate: true, minWitnesses: 0 },
];
