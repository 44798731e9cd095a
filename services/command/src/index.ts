export * from './app.ts';
export { userIdByEmail } from './auth/accounts.ts';
export { grantAdmin, grantRole, revokeRole } from './auth/roles.ts';
export { commandOperations } from './openapi.ts';
