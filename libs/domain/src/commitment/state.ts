export const STATUSES = [
  'draft',
  'proposed',
  'active',
  'fulfilment_claimed',
  'fulfilled',
  'disputed',
  'breached',
  'cancelled',
] as const;
export type Status = (typeof STATUSES)[number];

export type Role = 'creator' | 'participant' | 'witness';

export type Response = 'invited' | 'accepted' | 'declined';

export interface Party {
  userId: string;
  role: Role;
  response: Response;
}

export interface Amount {
  minor: number;
  currency: string;
}

/** terms: part of what is agreed (drafts only); evidence: proof added later, never changing the terms. */
export type DocumentPurpose = 'terms' | 'evidence';

export interface DocumentVersion {
  documentId: string;
  name: string;
  mediaType: string;
  size: number;
  sha256: string;
  version: number;
  purpose: DocumentPurpose;
  /** Who attached it: the creator for terms; for evidence, the party whose it is. */
  attachedBy: string | null;
}

export type Outcome = 'fulfilled' | 'breached';

export interface Terms {
  title: string;
  description: string;
  terms: string;
  amount: Amount | null;
  dueAt: string | null;
}

export interface Amendment {
  amendmentId: string;
  proposedBy: string;
  changes: Partial<Terms>;
  acceptedBy: string[];
}

export interface Commitment extends Terms {
  id: string;
  /** False until the commitment is created: the state a new stream starts from. */
  exists: boolean;
  type: string;
  status: Status;
  overdue: boolean;
  /** Stream version: the number of events applied. */
  version: number;
  createdAt: string | null;
  updatedAt: string | null;
  parties: Party[];
  /** Every version of every document, in upload order. */
  documents: DocumentVersion[];
  fulfilmentClaimedBy: string | null;
  resolutionVotes: Record<string, Outcome>;
  cancellationRequestedBy: string[];
  amendment: Amendment | null;
}

export function initialState(id: string): Commitment {
  return {
    id,
    exists: false,
    type: '',
    title: '',
    description: '',
    terms: '',
    amount: null,
    dueAt: null,
    status: 'draft',
    overdue: false,
    version: 0,
    createdAt: null,
    updatedAt: null,
    parties: [],
    documents: [],
    fulfilmentClaimedBy: null,
    resolutionVotes: {},
    cancellationRequestedBy: [],
    amendment: null,
  };
}

export const partyOf = (state: Commitment, userId: string) => state.parties.find((p) => p.userId === userId);
/** The parties who owe or are owed: the creator and the participants (not witnesses). */
export const principals = (state: Commitment) => state.parties.filter((p) => p.role !== 'witness');
export const witnesses = (state: Commitment) => state.parties.filter((p) => p.role === 'witness');
export const participants = (state: Commitment) => state.parties.filter((p) => p.role === 'participant');
export const creatorOf = (state: Commitment) => state.parties.find((p) => p.role === 'creator');

/** The latest version of each document. */
export function latestDocuments(state: Commitment): DocumentVersion[] {
  const latest = new Map<string, DocumentVersion>();
  for (const doc of state.documents) latest.set(doc.documentId, doc);
  return [...latest.values()];
}
