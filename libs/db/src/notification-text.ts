// The words of an in-app notification (its title and body name people and commitments) at rest:
// one JSON value sealed under its recipient's data key and bound to its row, so erasing the
// recipient shreds them and a value moved to another notification does not open. The notifier
// writes them, the query service and the delivery channels read them, an erasure rewrites them.
import { notificationField } from './clear-fields.ts';
import type { FieldCipher } from './field-cipher.ts';

export interface NotificationText {
  title: string;
  body: string;
}

interface Addressed {
  id: string;
  recipientId: string;
}

const fieldOf = ({ id, recipientId }: Addressed) => notificationField({ id, recipientId });

/** Each notification's text as stored in `sealed`; null where its recipient is erased (store nothing then). */
export function sealNotificationTexts(
  cipher: FieldCipher,
  notifications: readonly (Addressed & NotificationText)[],
): Promise<(Buffer | null)[]> {
  return cipher.seal(notifications.map((n) => ({ ...fieldOf(n), value: { title: n.title, body: n.body } })));
}

/**
 * Each stored row's text; undefined where its recipient is erased. Throws SealBroken for a value
 * that does not open, such as one sealed for another row.
 */
export function openNotificationTexts(
  cipher: FieldCipher,
  rows: readonly (Addressed & { sealed: Uint8Array })[],
): Promise<(NotificationText | undefined)[]> {
  return cipher.open<NotificationText>(rows.map((row) => ({ ...fieldOf(row), stored: row.sealed })));
}
