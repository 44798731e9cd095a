// What a GraphQL document must wait for under Connect-Min-Index: the read models, and the
// notifications too only when it reads or marks them. The notifier follows the ledger on its own
// (its batches are spaced further apart), so a query of commitments does not wait for it.
import { BREAK, type DocumentNode, visit } from 'graphql';
import type { Reach } from '../projected-index.ts';

/** The fields whose answers come from the notifications the notifier writes. */
const NOTIFICATION_FIELDS = new Set(['notifications', 'unreadNotificationCount', 'markNotificationsRead']);

export function reachOf(document: DocumentNode): Reach {
  let reach: Reach = 'read-models';
  visit(document, {
    Field(field) {
      if (!NOTIFICATION_FIELDS.has(field.name.value)) return undefined;
      reach = 'with-notifications';
      return BREAK;
    },
  });
  return reach;
}
