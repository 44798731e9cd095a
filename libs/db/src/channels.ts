/** NOTIFY channel of the projector: payload `<projection>:<last projected index>`. */
export const PROJECTED_CHANNEL = 'connect_projected';

/** NOTIFY channel of the ledger: payload `<tree size>` after each append commits. */
export const LEDGER_CHANNEL = 'connect_ledger';

/** NOTIFY channel of erased data keys: payload `<subject>`. */
export const KEYS_ERASED_CHANNEL = 'connect_keys_erased';
