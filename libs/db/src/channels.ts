/** NOTIFY channel of the projector: payload `<projection>:<last projected index>`. */
export const PROJECTED_CHANNEL = 'connect_projected';
