export * from './app.ts';
export { grantAdmin } from './auth/accounts.ts';
