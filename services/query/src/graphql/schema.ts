export const schema = /* GraphQL */ `
  enum Status { draft proposed active fulfilment_claimed fulfilled disputed breached cancelled }
  enum Role { creator participant witness }
  enum Response { invited accepted declined }
  "terms: part of what was agreed (attached to the draft); evidence: proof a party added later, never changing the terms."
  enum DocumentPurpose { terms evidence }
  "Any JSON value: an event's data, as REST's history shows it."
  scalar JSON

  type User {
    id: ID!, displayName: String, isAdmin: Boolean!
    "An https URL of the user's picture (PATCH /v1/me); null: none."
    avatarUrl: String
    "The roles held now: admin, auditor."
    roles: [String!]!
  }
  type Amount { minor: Float!, currency: String! }
  type Party { userId: ID!, displayName: String, role: Role!, response: Response! }
  type Document {
    documentId: ID!
    name: String!
    mediaType: String!
    size: Float!
    sha256: String!
    version: Int!
    purpose: DocumentPurpose!
    attachedBy: ID
  }
  "Changes to the terms; a field left out is unchanged."
  type TermChanges { title: String, description: String, terms: String, amount: Amount, dueAt: String }
  type PendingAmendment {
    amendmentId: ID!
    proposedBy: ID!
    proposedByName: String
    changes: TermChanges!
    "The terms it changes, by name: a named field that is null in changes is cleared."
    changedFields: [String!]!
    acceptedBy: [ID!]!
  }
  type Actor { userId: ID!, displayName: String }
  type HistoryEvent {
    index: Float!
    version: Int!
    type: String!
    at: String!
    actor: Actor
    summary: String!
    "The event's data; null once redacted."
    changes: JSON
    leafHash: String!
    redacted: Boolean!
  }
  type Commitment {
    id: ID!
    type: String!
    title: String!
    description: String!
    terms: String!
    amount: Amount
    dueAt: String
    status: Status!
    overdue: Boolean!
    version: Int!
    createdAt: String!
    updatedAt: String!
    parties: [Party!]!
    documents: [Document!]!
    "An amendment awaiting answers; null when there is none."
    pendingAmendment: PendingAmendment
    history: [HistoryEvent!]!
  }
  type CommitmentType {
    key: ID!, name: String!, requiresAmount: Boolean!, requiresDueDate: Boolean!, minWitnesses: Int!
    "Who may create one: anyone, verified (a verified email) or admin."
    createdBy: String!
    witnessesMustBeVerified: Boolean!
  }
  type PageInfo { hasNextPage: Boolean!, endCursor: String }
  type CommitmentEdge { cursor: String!, node: Commitment! }
  type CommitmentConnection { edges: [CommitmentEdge!]!, pageInfo: PageInfo! }
  "What a person is told: ids are ledgerIndex:recipient:kind. kind: invitation, response, lifecycle, amendment, dispute, document or reminder."
  type Notification {
    id: ID!
    kind: String!
    title: String!
    body: String!
    "The commitment in the app."
    link: String!
    commitmentId: ID!
    "The ledger entry it came from."
    ledgerIndex: Float!
    createdAt: String!
    readAt: String
  }
  type NotificationEdge { cursor: String!, node: Notification! }
  type NotificationConnection { edges: [NotificationEdge!]!, pageInfo: PageInfo! }
  input CommitmentFilter { status: [Status!], role: Role, type: String, dueBefore: String, dueAfter: String }

  type Query {
    me: User!
    commitment(id: ID!): Commitment
    commitments(first: Int = 20, after: String, filter: CommitmentFilter): CommitmentConnection!
    commitmentTypes: [CommitmentType!]!
    "Your notifications, newest first; unread: true for only the unread ones."
    notifications(first: Int = 20, after: String, unread: Boolean): NotificationConnection!
    unreadNotificationCount: Int!
  }

  type Mutation {
    "Marks your notifications read, those of ids or all of them (give one): how many were unread."
    markNotificationsRead(ids: [ID!], all: Boolean): Int!
  }

  type Subscription {
    "Every change to one commitment you are party to."
    commitmentChanged(id: ID!): Commitment!
    "Every change to any commitment you are party to."
    myCommitments: Commitment!
    "Each notification you get from now on."
    notificationAdded: Notification!
  }
`;
