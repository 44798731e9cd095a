// Every commitment event: its data schema and schema version. Old versions are upcast on read,
// never rewritten in the ledger.
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
import { STATUSES } from './state.ts';

const documentFields = {
  documentId: uuid,
  name: z.string().min(1).max(255),
  mediaType: z.string().min(1).max(255),
  size: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  version: z.number().int().min(1),
};

export const eventSchemas = {
  CommitmentDrafted: z.object({
    type: z.string(),
    creatorId: z.string(),
    title: termsFields.title,
    description: termsFields.description,
    terms: termsFields.terms,
    amount: amountSchema.nullable(),
    dueAt: instant.nullable(),
  }),
  CommitmentUpdated: z.object({ changes: termChanges }),
  PartyInvited: z.object({ userId: z.string(), role: roleSchema }),
  PartyRemoved: z.object({ userId: z.string() }),
  /** A document of the terms, attached to a draft by its creator. */
  DocumentAttached: z.object(documentFields),
  /** Proof a party adds once the commitment is agreed (of payment, say): it never changes the terms. */
  EvidenceAttached: z.object({ ...documentFields, userId: z.string() }),
  DocumentRemoved: z.object({ documentId: uuid }),
  CommitmentProposed: z.object({}),
  ProposalWithdrawn: z.object({}),
  InvitationAccepted: z.object({ userId: z.string() }),
  InvitationDeclined: z.object({ userId: z.string(), reason: z.string().optional() }),
  CommitmentActivated: z.object({}),
  CommitmentCancelled: z.object({ reason: z.string().optional() }),
  FulfilmentClaimed: z.object({ userId: z.string(), note: z.string().optional() }),
  FulfilmentConfirmed: z.object({ userId: z.string() }),
  CommitmentDisputed: z.object({ userId: z.string(), reason: z.string() }),
  BreachReported: z.object({ userId: z.string(), reason: z.string() }),
  ResolutionVoted: z.object({ userId: z.string(), outcome: outcomeSchema }),
  DisputeResolved: z.object({ outcome: outcomeSchema, decidedBy: z.enum(['witness', 'agreement']) }),
  CancellationRequested: z.object({ userId: z.string() }),
  DeadlineMissed: z.object({ dueAt: instant }),
  AmendmentProposed: z.object({ amendmentId: uuid, userId: z.string(), changes: termChanges }),
  AmendmentAccepted: z.object({ amendmentId: uuid, userId: z.string() }),
  AmendmentDeclined: z.object({ amendmentId: uuid, userId: z.string() }),
  AmendmentApplied: z.object({ amendmentId: uuid }),
  /**
   * A commitment brought over from another system (a Supabase project) whose history could not be
   * replayed as events: the whole state that system showed, as one fact. It begins a stream.
   */
  CommitmentImported: z.object({
    source: z.string().min(1).max(100),
    type: z.string(),
    creatorId: z.string(),
    title: termsFields.title,
    description: termsFields.description,
    terms: termsFields.terms,
    amount: amountSchema.nullable(),
    dueAt: instant.nullable(),
    status: z.enum(STATUSES),
    parties: z.array(
      z.object({
        userId: z.string(),
        role: z.enum(['creator', 'participant', 'witness']),
        response: z.enum(['invited', 'accepted', 'declined']),
      }),
    ),
    documents: z.array(z.object(documentFields)),
  }),
} as const;

export type CommitmentEventType = keyof typeof eventSchemas;
export type CommitmentEvent = {
  [K in CommitmentEventType]: { type: K; data: z.infer<(typeof eventSchemas)[K]> };
}[CommitmentEventType];

/** The schema version each event type is written at today. */
export const CURRENT_SCHEMA: Record<CommitmentEventType, number> = Object.fromEntries(
  Object.keys(eventSchemas).map((type) => [type, type === 'CommitmentDrafted' ? 2 : 1]),
) as Record<CommitmentEventType, number>;

type Upcaster = (data: Record<string, unknown>, actor: string | null) => Record<string, unknown>;

/** Upcasters by event type and the version they read from, each lifting data one version. */
const upcasters: Partial<Record<CommitmentEventType, Record<number, Upcaster>>> = {
  // v1 named the type `typeKey`, had no description or terms, and took the creator from the actor.
  CommitmentDrafted: {
    1: ({ typeKey, title, amount, dueAt }, actor) => ({
      type: typeKey,
      creatorId: actor,
      title,
      description: '',
      terms: '',
      amount: amount ?? null,
      dueAt: dueAt ?? null,
    }),
  },
};

export class UnknownEventError extends Error {}

/** An event as stored (type, schema version, data), lifted to today's schema and validated. */
export function readEvent(stored: {
  type: string;
  schema: number;
  data: unknown;
  actor: string | null;
}): CommitmentEvent {
  if (!(stored.type in eventSchemas)) throw new UnknownEventError(`unknown event type ${stored.type}`);
  const type = stored.type as CommitmentEventType;
  let data = stored.data as Record<string, unknown>;
  for (let version = stored.schema; version < CURRENT_SCHEMA[type]; version++) {
    const upcast = upcasters[type]?.[version];
    if (!upcast) throw new UnknownEventError(`no upcaster for ${type} v${version}`);
    data = upcast(data, stored.actor);
  }
  return { type, data: eventSchemas[type].parse(data) } as CommitmentEvent;
}
