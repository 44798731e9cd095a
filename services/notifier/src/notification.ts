// What the notifier tells a person, whichever channel carries it.

export const NOTIFICATION_KINDS = [
  'invitation',
  'response',
  'lifecycle',
  'amendment',
  'dispute',
  'document',
  'reminder',
] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

export const CHANNELS = ['inapp', 'email', 'push', 'sms'] as const;
export type Channel = (typeof CHANNELS)[number];

export interface Notification {
  /** Stable across retries and restarts: derived from the ledger index, the recipient and the kind. */
  id: string;
  recipientId: string;
  kind: NotificationKind;
  /** A line a person reads (names, not ids). */
  title: string;
  body: string;
  /** The commitment in the app (CONNECT_APP_URL). */
  link: string;
  commitmentId: string;
  /** The ledger entry it came from (a reminder: the entry that set the due date). */
  ledgerIndex: number;
  createdAt: string;
}

/** The id of the notification an entry gives a recipient: the same however often it is computed. */
export const notificationId = (ledgerIndex: number, recipientId: string, kind: NotificationKind) =>
  `${ledgerIndex}:${recipientId}:${kind}`;
