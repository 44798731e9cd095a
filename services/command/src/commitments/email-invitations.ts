// Invitations by email. An address with an account is invited as by its user id; an address
// without one gets a pending invitation and a mail (through the notifier's queue). The caller gets
// the same answer either way, after the same checks, so an invitation never tells who has an
// account. Once an account verifies an address, its pending invitations become PartyInvited
// events, appended as their inviter, through the same command path as any invitation.
import { randomUUID } from 'node:crypto';
import {
  type Database,
  INVITATIONS_SUBJECT,
  invitationEmailPlace,
  normalizeEmail,
  type UserEmails,
} from '@connect/db';
import { type Commitment, canSee, decide, mustBeCreator, Refusal } from '@connect/domain';
import type { Ledger } from '@connect/ledger';
import { enqueueAccountMail } from '@connect/notifier';
import type { Kysely, Transaction } from 'kysely';
import { commandLanes } from './command-lanes.ts';
import { type ExecuteDeps, executeCommand, mustBeAtVersion, notFound } from './execute.ts';
import { loadCommitment, typeRegistry } from './load.ts';
import { readFacts } from './people.ts';
import { stateCache } from './state-cache.ts';

/** How long a pending invitation waits for its address to get an account. */
export const INVITATION_DAYS = 30;

type InvitedRole = 'participant' | 'witness';

export interface EmailInvitationAnswer {
  commitmentId: string;
  invitation: { email: string; role: InvitedRole; status: 'sent' };
}

export interface EmailInvitation {
  email: string;
  role: InvitedRole;
  createdAt: string;
  expiresAt: string;
}

interface Caller {
  userId: string;
  isAdmin: boolean;
}

interface InviteByEmail {
  commitmentId: string;
  caller: Caller;
  email: string;
  role: InvitedRole;
  ifMatch?: number;
  correlationId: string;
  now?: Date;
}

/** What inviting by email needs beyond a command's dependencies: the addresses' index and seal. */
export type InvitationDeps = ExecuteDeps & { emails: UserEmails };

/**
 * Refuses what would refuse the invitation of anyone (no such commitment, not the creator, not a
 * draft, a stale If-Match): deciding the invitation of a new id, surely no party, says exactly that.
 */
async function mustAllowInvitations(deps: ExecuteDeps, input: InviteByEmail): Promise<Commitment> {
  const state = await loadCommitment(deps.db, deps.ledger, input.commitmentId);
  if (!state.exists || !canSee(state, input.caller)) throw notFound();
  mustBeAtVersion(state, input.ifMatch);
  const stranger = randomUUID();
  const people = new Map(await readFacts(deps.db, [input.caller.userId]));
  // Taken as verified: an address without an account is claimed only once an account verifies it.
  people.set(stranger, { emailVerified: true, roles: [] });
  decide({ action: 'invite', userId: stranger, role: input.role }, state, {
    actor: input.caller.userId,
    now: (input.now ?? new Date()).toISOString(),
    newId: randomUUID,
    types: await deps.types.get(),
    people,
  });
  return state;
}

const open = (db: Kysely<Database>) =>
  db
    .selectFrom('pending_invitations')
    .where('accepted_at', 'is', null)
    .where('cancelled_at', 'is', null)
    .where('voided_at', 'is', null);

/** Stores (or renews) the pending invitation of an address and adds the job mailing it. */
async function storeInvitation(
  trx: Transaction<Database>,
  emails: UserEmails,
  state: Commitment,
  input: InviteByEmail & { now: Date; emailIndex: Buffer },
): Promise<void> {
  const expiresAt = new Date(input.now.getTime() + INVITATION_DAYS * 24 * 3600 * 1000);
  const inviter = await trx
    .selectFrom('users')
    .select('display_name')
    .where('id', '=', input.caller.userId)
    .executeTakeFirst();
  const id = randomUUID();
  const [sealed] = await emails.fields.seal([
    { subject: INVITATIONS_SUBJECT, place: invitationEmailPlace(id), value: input.email },
  ]);
  const stored = await trx
    .insertInto('pending_invitations')
    .values({
      id,
      commitment_id: input.commitmentId,
      email_sealed: sealed ?? null,
      email_hash: input.emailIndex,
      role: input.role,
      invited_by: input.caller.userId,
      created_at: input.now,
      expires_at: expiresAt,
    })
    .onConflict((oc) =>
      oc
        .columns(['commitment_id', 'email_hash'])
        .where('accepted_at', 'is', null)
        .where('cancelled_at', 'is', null)
        .where('voided_at', 'is', null)
        .doUpdateSet({ role: input.role, invited_by: input.caller.userId, expires_at: expiresAt }),
    )
    .returning('id')
    .executeTakeFirstOrThrow();
  await enqueueAccountMail(trx, emails.fields, [
    {
      purpose: 'invite',
      requestedAt: input.now.toISOString(),
      invitation: {
        id: stored.id,
        inviterName: inviter?.display_name ?? 'Someone',
        title: state.title,
        role: input.role,
      },
    },
  ]);
}

/**
 * Invites the person with this address: as a party when an account has it verified, else by a
 * pending invitation and a mail. Answers the same in both cases; refusals that do not depend on the
 * address come first, and one that does (the account is a party already) is not told.
 */
export async function inviteByEmail(
  deps: InvitationDeps,
  request: InviteByEmail,
): Promise<EmailInvitationAnswer> {
  const email = normalizeEmail(request.email);
  const input = {
    ...request,
    email,
    emailIndex: await deps.emails.index(email),
    now: request.now ?? new Date(),
  };
  const state = await mustAllowInvitations(deps, input);
  const invitee = await deps.db.transaction().execute(async (trx) => {
    // An account whose owner has not proved the address counts as no account: whoever signed up
    // with someone else's address must not receive their invitations. The invitation waits for
    // the address to be verified, as for a newcomer.
    const user = await trx
      .selectFrom('users')
      .select('id')
      .where('email_index', '=', input.emailIndex)
      .where('email_verified_at', 'is not', null)
      .executeTakeFirst();
    if (!user) await storeInvitation(trx, deps.emails, state, input);
    return user?.id;
  });
  if (invitee !== undefined) {
    try {
      await executeCommand(deps, {
        commitmentId: input.commitmentId,
        command: { action: 'invite', userId: invitee, role: input.role },
        actor: input.caller,
        ifMatch: input.ifMatch,
        correlationId: input.correlationId,
      });
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      // The commitment moved on meanwhile: answered as any invitation would be. Otherwise the
      // refusal is about this account, which the caller is not told of.
      await mustAllowInvitations(deps, input);
    }
  }
  return {
    commitmentId: input.commitmentId,
    invitation: { email: input.email, role: input.role, status: 'sent' },
  };
}

/**
 * Turns the open, unexpired invitations of the user's (just verified) address into PartyInvited
 * events, each appended as its inviter with meta naming the invitation, and marks them accepted;
 * one the commitment refuses by now (cancelled, proposed, the user a party already) is void.
 * Never throws: a failure leaves the invitation pending and is logged, and verification goes on.
 * Returns how many became PartyInvited events.
 */
export async function claimEmailInvitations(
  db: Kysely<Database>,
  ledger: Ledger,
  /** The user and the blind index of their (just verified) address. */
  user: { id: string; emailIndex: Uint8Array },
  options: {
    now?: Date;
    correlationId?: string;
    log?: { error(object: object, message: string): void };
  } = {},
): Promise<number> {
  const now = options.now ?? new Date();
  const deps: ExecuteDeps = {
    db,
    ledger,
    types: typeRegistry(db, ledger),
    states: stateCache(16),
    lanes: commandLanes(),
  };
  let claimed = 0;
  try {
    const pending = await open(db)
      .select('id')
      .where('email_hash', '=', user.emailIndex)
      .where('expires_at', '>', now)
      .orderBy('created_at')
      .execute();
    for (const { id } of pending) {
      const invited = await db.transaction().execute(async (trx) => {
        // Locked while its event is appended: a second claim at once skips it.
        const invitation = await open(trx)
          .select(['commitment_id', 'role', 'invited_by'])
          .where('id', '=', id)
          .forUpdate()
          .skipLocked()
          .executeTakeFirst();
        if (!invitation) return false;
        let outcome: { accepted_at: Date; accepted_by: string } | { voided_at: Date };
        try {
          await executeCommand(deps, {
            commitmentId: invitation.commitment_id,
            command: { action: 'invite', userId: user.id, role: invitation.role },
            actor: { userId: invitation.invited_by, isAdmin: false },
            correlationId: options.correlationId ?? randomUUID(),
            meta: { invitation: 'email', invitationId: id },
          });
          outcome = { accepted_at: now, accepted_by: user.id };
        } catch (error) {
          if (!(error instanceof Refusal)) throw error;
          outcome = { voided_at: now };
        }
        await trx.updateTable('pending_invitations').set(outcome).where('id', '=', id).execute();
        return 'accepted_at' in outcome;
      });
      if (invited) claimed++;
    }
  } catch (error) {
    options.log?.error({ err: error, userId: user.id }, 'claiming invitations by email failed');
  }
  return claimed;
}

/** The open invitations by email of a commitment, for its creator. */
export async function listEmailInvitations(
  deps: InvitationDeps,
  commitmentId: string,
  caller: Caller,
  now = new Date(),
): Promise<EmailInvitation[]> {
  const state = await loadCommitment(deps.db, deps.ledger, commitmentId);
  if (!state.exists || !canSee(state, caller)) throw notFound();
  mustBeCreator(state, caller.userId, 'see its invitations by email');
  const rows = await open(deps.db)
    .select(['id', 'email', 'email_sealed', 'role', 'created_at', 'expires_at'])
    .where('commitment_id', '=', commitmentId)
    .where('expires_at', '>', now)
    .orderBy('created_at')
    .execute();
  const sealed = rows.flatMap(({ id, email_sealed }) =>
    email_sealed
      ? [{ subject: INVITATIONS_SUBJECT, place: invitationEmailPlace(id), stored: email_sealed }]
      : [],
  );
  const opened = await deps.emails.fields.open<string>(sealed);
  const byPlace = new Map(sealed.map((field, i) => [field.place, opened[i]]));
  return rows.map((row) => ({
    email: (row.email_sealed ? byPlace.get(invitationEmailPlace(row.id)) : row.email) ?? '',
    role: row.role,
    createdAt: row.created_at.toISOString(),
    expiresAt: row.expires_at.toISOString(),
  }));
}
