import { z } from 'zod';

export const uuid = z.uuid();
export const currency = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as EUR');
export const amountSchema = z.object({
  minor: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  currency,
});
/** A UTC instant the read models can store: years 0001 to 9999 (PostgreSQL has no year 0). */
export const instant = z.iso
  .datetime({ offset: false, precision: 3 })
  .or(z.iso.datetime({ offset: false }))
  .refine((value) => !value.startsWith('0000'), 'must be a date in the years 0001 to 9999');
export const roleSchema = z.enum(['participant', 'witness']);
export const outcomeSchema = z.enum(['fulfilled', 'breached']);

export const termsFields = {
  title: z.string().trim().min(1).max(200),
  description: z.string().max(10_000),
  terms: z.string().max(50_000),
  amount: amountSchema.nullable(),
  dueAt: instant.nullable(),
};

/** Terms a command may change: any of them, at least one. */
export const termChanges = z
  .object({
    title: termsFields.title.optional(),
    description: termsFields.description.optional(),
    terms: termsFields.terms.optional(),
    amount: termsFields.amount.optional(),
    dueAt: termsFields.dueAt.optional(),
  })
  .strict()
  .refine((changes) => Object.keys(changes).length > 0, 'change at least one field');
