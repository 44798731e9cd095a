// Commitment types configure behaviour: a type can require an amount, a due date, N witnesses,
// and say who may create one and whether its witnesses need a verified email.
import { z } from 'zod';

/**
 * Who may create a commitment of a type: anyone; a user whose email is verified; an admin. (An
 * auditor acts on no commitment, so no type can be for auditors.) Absent: anyone.
 */
export const CREATED_BY = ['anyone', 'verified', 'admin'] as const;
export type CreatedBy = (typeof CREATED_BY)[number];

export const commitmentTypeSchema = z
  .object({
    key: z.string().regex(/^[a-z][a-z0-9-]{0,49}$/, 'lowercase letters, digits and dashes'),
    name: z.string().trim().min(1).max(100),
    requiresAmount: z.boolean().default(false),
    requiresDueDate: z.boolean().default(false),
    minWitnesses: z.number().int().min(0).max(20).default(0),
    createdBy: z.enum(CREATED_BY).optional(),
    /** Only users with a verified email may be invited as witnesses. Absent: false. */
    witnessesMustBeVerified: z.boolean().optional(),
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
