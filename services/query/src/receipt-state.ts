// The domain's side of a commitment's receipt: the state its entries replay to (the bundle's
// `state`, and what every verifier here replays to compare with it), and the parties' names
// from their profile entries. Pure, so the /verify page bundles it for the browser too.
import {
  type Commitment,
  commitmentIdOf,
  initialState,
  profileStated,
  profileStream,
  type RecordedEvent,
  replayRecorded,
} from '@connect/domain';

export type ReceiptState = Omit<Commitment, 'exists'>;

/**
 * What a commitment stream's entries replay to; throws for entries of any other stream. The
 * commitment is the entries' (or, for none, the one given).
 */
export function replayReceipt(
  entries: readonly (RecordedEvent & { stream: string })[],
  commitmentId?: string,
): ReceiptState {
  const stream = entries[0]?.stream;
  const id = stream === undefined ? commitmentId : commitmentIdOf(stream);
  if (!id) throw new Error('the entries are not a commitment’s events');
  const { exists: _exists, ...state } = replayRecorded(initialState(id), [...entries]);
  return state;
}

/** The profile streams of a commitment's parties, whose entries the receipt carries for their names. */
export const partyProfileStreams = (entries: readonly (RecordedEvent & { stream: string })[]): string[] =>
  entries.length === 0 ? [] : replayReceipt(entries).parties.map((party) => profileStream(party.userId));

/**
 * Display names by user id, from the profile entries (ProfileRegistered, then ProfileUpdated: the
 * last wins) in each user's own profile stream.
 */
export function profileNames(
  profiles: readonly { stream?: unknown; type?: unknown; data?: unknown }[],
): Map<string, string> {
  const names = new Map<string, string>();
  for (const entry of profiles) {
    const stated = profileStated(entry);
    if (stated && entry.stream === profileStream(stated.userId)) names.set(stated.userId, stated.displayName);
  }
  return names;
}

const STATUS_WORDS: Record<ReceiptState['status'], string> = {
  draft: 'draft (not yet proposed)',
  proposed: 'proposed (waiting for the parties to accept)',
  active: 'active (every party accepted)',
  fulfilment_claimed: 'fulfilment claimed (waiting for confirmation)',
  fulfilled: 'fulfilled',
  disputed: 'disputed',
  breached: 'breached',
  cancelled: 'cancelled',
};

function money({ minor, currency }: { minor: number; currency: string }): string {
  try {
    const format = new Intl.NumberFormat('en', { style: 'currency', currency });
    const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
    return format.format(minor / 10 ** digits);
  } catch {
    return `${minor} minor units of ${currency}`;
  }
}

const day = (instant: string | null) =>
  instant ? instant.replace('T', ' ').replace(/:\d\d\.\d{3}Z$/, ' UTC') : '';

/**
 * What a verified receipt proves, as a person reads it: one label and value per line. Parties
 * are named by the display names in their profile entries (their user id when the receipt has none).
 */
export function describeReceipt(
  state: ReceiptState,
  names: ReadonlyMap<string, string>,
): { label: string; value: string }[] {
  const lines = [
    { label: 'Title', value: state.title },
    { label: 'Kind', value: state.type },
    {
      label: 'Status',
      value: `${STATUS_WORDS[state.status] ?? state.status}${state.overdue ? ', overdue' : ''}`,
    },
    { label: 'Amount', value: state.amount ? money(state.amount) : 'none' },
    { label: 'Due', value: state.dueAt ? day(state.dueAt) : 'no due date' },
    ...state.parties.map((party) => ({
      label: party.role === 'creator' ? 'Creator' : party.role === 'witness' ? 'Witness' : 'Participant',
      value: `${names.get(party.userId) ?? party.userId} (${party.response})`,
    })),
    { label: 'Description', value: state.description },
    { label: 'Terms', value: state.terms },
    ...state.documents.map((doc) => ({
      label: 'Document',
      value: `${doc.name} v${doc.version} (sha256 ${doc.sha256})`,
    })),
    { label: 'Created', value: day(state.createdAt) },
    { label: 'Last changed', value: `${day(state.updatedAt)} (event ${state.version})` },
  ];
  return lines.filter((line) => line.value !== '');
}
