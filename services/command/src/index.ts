export * from './app.ts';
export { grantAdmin } from './auth/accounts.ts';
export { commandOperations } from './openapi.ts';
