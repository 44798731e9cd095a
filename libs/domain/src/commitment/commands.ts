// Every command on a commitment, as zod schemas: the HTTP bodies are validated by these.
import { z } from 'zod';
import {
  amountSchema,
  instant,
  outcomeSchema,
  roleSchema,
  termChanges,
  termsFields,
  uuid,
} from './schemas.ts';

const reason = z.string().trim().min(1).max(2000);

export const commandBodies = {
  create: z
    .object({
      type: z.string().regex(/^[a-z][a-z0-9-]{0,49}$/, 'must be a commitment type key'),
      title: termsFields.title,
      description: termsFields.description.optional(),
      terms: termsFields.terms.optional(),
      amount: amountSchema.nullable().optional(),
      dueAt: instant.nullable().optional(),
    })
    .strict(),
  update: termChanges,
  invite: z.object({ userId: uuid, role: roleSchema }).strict(),
  'remove-party': z.object({ userId: uuid }).strict(),
  'attach-document': z
    .object({
      documentId: uuid.optional(),
      name: z.string().trim().min(1).max(255),
      mediaType: z.string().min(1).max(255),
      size: z.number().int().min(0),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
    })
    .strict(),
  'remove-document': z.object({ documentId: uuid }).strict(),
  propose: z.object({}).strict(),
  withdraw: z.object({}).strict(),
  accept: z.object({}).strict(),
  decline: z.object({ reason: reason.optional() }).strict(),
  cancel: z.object({ reason: reason.optional() }).strict(),
  'claim-fulfilment': z.object({ note: reason.optional() }).strict(),
  'confirm-fulfilment': z.object({}).strict(),
  dispute: z.object({ reason }).strict(),
  'report-breach': z.object({ reason }).strict(),
  resolve: z.object({ outcome: outcomeSchema }).strict(),
  'request-cancellation': z.object({}).strict(),
  'propose-amendment': z.object({ changes: termChanges }).strict(),
  'accept-amendment': z.object({ amendmentId: uuid }).strict(),
  'decline-amendment': z.object({ amendmentId: uuid }).strict(),
  'miss-deadline': z.object({}).strict(),
} as const;

export type CommandName = keyof typeof commandBodies;
// An empty strict object infers as Record<string, never>, which no command with an action satisfies.
type Body<T> = string extends keyof T ? unknown : T;

export type CommitmentCommand = {
  [K in CommandName]: { action: K } & Body<z.infer<(typeof commandBodies)[K]>>;
}[CommandName];
