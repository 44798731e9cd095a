export * from './channels.ts';
export * from './config.ts';
export * from './database.ts';
export * from './embedded-postgres.ts';
export * from './migrate.ts';
export * from './reader-login.ts';
export type * from './schema.ts';
export * from './scratch-database.ts';
export * from './secret-file.ts';
