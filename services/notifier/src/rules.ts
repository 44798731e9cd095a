// Who hears of what: one commitment event, with the commitment's state before and after it, becomes
// the notifications of the people it concerns, never of whoever did it. Pure: names, the app's
// URL and the time all come in as arguments.
import type { Commitment, CommitmentEvent, Role } from '@connect/domain';
import { type Notification, type NotificationKind, notificationId } from './notification.ts';

/** A commitment event as the ledger recorded it, between the states it leads from and to. */
export interface Happening {
  index: number;
  /** Who appended it; null for the system (a missed deadline). */
  actor: string | null;
  recordedAt: string;
  /** Replayed from another system by an import (the entry's meta names it): history, not news. */
  imported?: boolean;
  event: CommitmentEvent;
  before: Commitment;
  after: Commitment;
}

export interface Wording {
  /** Display names by user id, as the users registered them. */
  names: ReadonlyMap<string, string>;
  /** The web app's base URL, without a trailing slash. */
  appUrl: string;
}

/** Someone whose name is not known (never registered, or erased). */
export const UNKNOWN_NAME = 'Someone';

interface Message {
  to: readonly string[];
  kind: NotificationKind;
  title: string;
  body: string;
}

export const commitmentLink = (appUrl: string, commitmentId: string) =>
  `${appUrl.replace(/\/+$/, '')}/commitments/${commitmentId}`;

export function notificationsFor(happening: Happening, wording: Wording): Notification[] {
  // Imported history (connect migrate-from-supabase) happened long ago: nobody hears of it again.
  if (happening.imported) return [];
  const { index, actor, recordedAt, after } = happening;
  const message = messageFor(happening, (userId) =>
    userId === null ? UNKNOWN_NAME : (wording.names.get(userId) ?? UNKNOWN_NAME),
  );
  if (!message) return [];
  const recipients = [...new Set(message.to)].filter((userId) => userId !== actor);
  return recipients.map((recipientId) => ({
    id: notificationId(index, recipientId, message.kind),
    recipientId,
    kind: message.kind,
    title: message.title,
    body: message.body,
    link: commitmentLink(wording.appUrl, after.id),
    commitmentId: after.id,
    ledgerIndex: index,
    createdAt: recordedAt,
  }));
}

/** Every user a happening's message may name or reach: what its names must cover. */
export function usersOf(happening: Happening): string[] {
  const { actor, event, before, after } = happening;
  const subject = 'userId' in event.data ? [event.data.userId] : [];
  return [
    ...new Set([
      ...(actor === null ? [] : [actor]),
      ...subject,
      ...before.parties.map((p) => p.userId),
      ...after.parties.map((p) => p.userId),
    ]),
  ];
}

function messageFor(happening: Happening, nameOf: (userId: string | null) => string): Message | undefined {
  const { actor, event, before, after } = happening;
  const quoted = `“${after.title}”`;
  const by = nameOf(actor);
  /** Every party but the one the event is about (the actor is left out anyway). */
  const othersThan = (userId: string | null) =>
    after.parties.map((p) => p.userId).filter((id) => id !== userId);
  const creator = after.parties.find((p) => p.role === 'creator')?.userId;

  switch (event.type) {
    case 'PartyInvited':
      return {
        to: [event.data.userId],
        kind: 'invitation',
        title: `${by} invited you to ${quoted}`,
        body:
          `${by} asks you to be ${article(event.data.role)} of ${quoted}. ` +
          (after.status === 'proposed'
            ? 'Read the terms, then accept or decline.'
            : `You can accept or decline once ${by} proposes it.`),
      };
    case 'PartyRemoved':
      return {
        to: [event.data.userId],
        kind: 'lifecycle',
        title: `${by} removed you from ${quoted}`,
        body: `You are no longer a party to ${quoted}.`,
      };
    case 'InvitationAccepted': {
      const who = nameOf(event.data.userId);
      return {
        to: creator ? [creator] : [],
        kind: 'response',
        title: `${who} accepted ${quoted}`,
        body: after.parties.every((p) => p.response === 'accepted')
          ? `Every party has accepted: ${quoted} is now active.`
          : `${who} accepted your invitation; the others have yet to answer.`,
      };
    }
    case 'InvitationDeclined': {
      const who = nameOf(event.data.userId);
      const reason = event.data.reason ? `Their reason: ${event.data.reason}. ` : '';
      return {
        to: creator ? [creator] : [],
        kind: 'response',
        title: `${who} declined ${quoted}`,
        body: `${reason}${quoted} is back in draft: change it and propose it again, or cancel it.`,
      };
    }
    case 'CommitmentProposed':
      return {
        to: othersThan(actor),
        kind: 'lifecycle',
        title: `${by} proposed ${quoted}`,
        body: 'Read the terms, then accept or decline.',
      };
    case 'ProposalWithdrawn':
      return {
        to: othersThan(actor),
        kind: 'lifecycle',
        title: `${by} withdrew ${quoted}`,
        body: `${quoted} is back in draft; nothing to answer until it is proposed again.`,
      };
    case 'CommitmentActivated':
      return {
        to: othersThan(actor),
        kind: 'lifecycle',
        title: `${quoted} is active`,
        body: `Every party accepted ${quoted}; it is now in force${after.dueAt ? `, due ${when(after.dueAt)}` : ''}.`,
      };
    case 'CommitmentCancelled':
      return {
        to: othersThan(actor),
        kind: 'lifecycle',
        title: `${quoted} was cancelled`,
        body: event.data.reason
          ? `${by} cancelled it: ${event.data.reason}`
          : before.status === 'draft' || before.status === 'proposed'
            ? `${by} cancelled it.`
            : 'Every party agreed to cancel it.',
      };
    case 'CancellationRequested': {
      const who = nameOf(event.data.userId);
      return {
        to: othersThan(event.data.userId),
        kind: 'lifecycle',
        title: `${who} asks to cancel ${quoted}`,
        body: 'It is cancelled once every party agrees.',
      };
    }
    case 'FulfilmentClaimed': {
      const who = nameOf(event.data.userId);
      return {
        to: othersThan(event.data.userId),
        kind: 'lifecycle',
        title: `${who} says ${quoted} is fulfilled`,
        body: `${event.data.note ? `${who} notes: ${event.data.note}. ` : ''}Confirm it, or dispute it if it is not.`,
      };
    }
    case 'FulfilmentConfirmed': {
      const who = nameOf(event.data.userId);
      return {
        to: othersThan(event.data.userId),
        kind: 'lifecycle',
        title: `${who} confirmed ${quoted} is fulfilled`,
        body: after.status === 'fulfilled' ? `${quoted} is fulfilled.` : `${who} confirmed the fulfilment.`,
      };
    }
    case 'CommitmentDisputed': {
      const who = nameOf(event.data.userId);
      return {
        to: othersThan(event.data.userId),
        kind: 'dispute',
        title: `${who} disputed ${quoted}`,
        body: `Their reason: ${event.data.reason}`,
      };
    }
    case 'BreachReported': {
      const who = nameOf(event.data.userId);
      return {
        to: othersThan(event.data.userId),
        kind: 'dispute',
        title: `${who} reported a breach of ${quoted}`,
        body: `Their reason: ${event.data.reason}. ${quoted} is disputed until it is resolved.`,
      };
    }
    case 'ResolutionVoted': {
      const who = nameOf(event.data.userId);
      return {
        to: othersThan(event.data.userId),
        kind: 'dispute',
        title: `${who} would resolve ${quoted} as ${event.data.outcome}`,
        body: 'The dispute is resolved once a witness decides or every party agrees.',
      };
    }
    case 'DisputeResolved':
      return {
        to: othersThan(actor),
        kind: 'dispute',
        title: `${quoted} was resolved as ${event.data.outcome}`,
        body:
          event.data.decidedBy === 'witness'
            ? `${by}, a witness, decided the dispute.`
            : 'Every party agreed on the outcome.',
      };
    case 'DeadlineMissed':
      return {
        to: othersThan(actor),
        kind: 'lifecycle',
        title: `${quoted} is overdue`,
        body: `It was due ${when(event.data.dueAt)} and is not fulfilled.`,
      };
    case 'AmendmentProposed': {
      const who = nameOf(event.data.userId);
      const fields = Object.keys(event.data.changes).join(', ');
      return {
        to: othersThan(event.data.userId),
        kind: 'amendment',
        title: `${who} proposed a change to ${quoted}`,
        body: `It changes ${fields || 'the terms'}, once every party accepts it.`,
      };
    }
    case 'AmendmentAccepted': {
      const who = nameOf(event.data.userId);
      return {
        to: othersThan(event.data.userId),
        kind: 'amendment',
        title: `${who} accepted the change to ${quoted}`,
        body: 'The change applies once every party accepts it.',
      };
    }
    case 'AmendmentDeclined': {
      const who = nameOf(event.data.userId);
      return {
        to: othersThan(event.data.userId),
        kind: 'amendment',
        title: `${who} declined the change to ${quoted}`,
        body: 'The terms stay as they were.',
      };
    }
    case 'AmendmentApplied':
      return {
        to: othersThan(actor),
        kind: 'amendment',
        title: `The change to ${quoted} is agreed`,
        body: 'Every party accepted it; the new terms apply.',
      };
    case 'DocumentAttached':
      return {
        to: othersThan(actor),
        kind: 'document',
        title: `${by} added “${event.data.name}” to ${quoted}`,
        body: event.data.version > 1 ? `Version ${event.data.version} of the document.` : 'A new document.',
      };
    case 'EvidenceAttached': {
      const who = nameOf(event.data.userId);
      return {
        to: othersThan(event.data.userId),
        kind: 'document',
        title: `${who} added evidence to ${quoted}`,
        body: `“${event.data.name}”${event.data.version > 1 ? `, version ${event.data.version}` : ''}.`,
      };
    }
    case 'CommitmentDrafted':
    case 'CommitmentUpdated':
    case 'DocumentRemoved':
    case 'CommitmentImported':
      return undefined;
    default:
      return unreachable(event);
  }
}

const article = (role: Role) => `a ${role}`;

/** An instant as a person reads it, in UTC (the person's time zone is the app's to apply). */
const when = (instant: string) => `${instant.slice(0, 10)} ${instant.slice(11, 16)} UTC`;

function unreachable(value: never): never {
  throw new Error(`unexpected event ${JSON.stringify(value)}`);
}
