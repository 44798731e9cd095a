// What a GraphQL document must wait for under Connect-Min-Index: the read models, and the
// notifications too only when it reads or marks them. The notifier follows the ledger on its own
// (its batches are spaced further apart), so a query of commitments does not wait for it.
import { BREAK, type DocumentNode, visit } from 'graphql';
import type { Reach } from '../projected-index.ts';

/** Every field answered from the notifications the notifier writes (a new one must be added here). */
const NOTIFICATION_FIELDS = new Set(['notifications', 'unreadNotificationCount', 'markNotificationsRead']);

/** Per parsed document: mercurius hands the same one again for a query text it has cached. */
const reaches = new WeakMap<DocumentNode, Reach>();

export function reachOf(document: DocumentNode): Reach {
  let reach = reaches.get(document);
  if (reach) return reach;
  reach = 'read-models';
  visit(document, {
    Field(field) {
      if (!NOTIFICATION_FIELDS.has(field.name.value)) return undefined;
      reach = 'with-notifications';
      return BREAK;
    },
  });
  reaches.set(document, reach);
  return reach;
}
