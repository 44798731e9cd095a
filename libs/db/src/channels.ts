/** NOTIFY channel of the projector: payload `<projection>:<last projected index>`. */
export const PROJECTED_CHANNEL = 'connect_projected';

/**
 * The notifier's projection (services/notifier): its checkpoint row and PROJECTED_CHANNEL name,
 * whose index says which in-app notifications exist.
 */
export const NOTIFICATIONS_PROJECTION = 'notifications';

/** NOTIFY channel of the ledger: payload `<tree size>` after each append commits. */
export const LEDGER_CHANNEL = 'connect_ledger';

/** NOTIFY channel of erased data keys: payload `<subject>`. */
export const KEYS_ERASED_CHANNEL = 'connect_keys_erased';
