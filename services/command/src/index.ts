export * from './app.ts';
export { userIdByEmail } from './auth/accounts.ts';
export { createAccount, createAccounts } from './auth/create-account.ts';
export { type EraseOutcome, eraseUser } from './auth/erase-user.ts';
export { grantAdmin, grantRole, revokeRole } from './auth/roles.ts';
export {
  commitDraft,
  type DocumentSealing,
  DocumentUnreadableError,
  documentDigest,
  documentPath,
  storeDocumentFile,
} from './commitments/document-store.ts';
export { loadCommitment } from './commitments/load.ts';
export { commandOperations } from './openapi.ts';
