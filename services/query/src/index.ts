export * from './app.ts';
export { queryOperations } from './openapi.ts';
export { createReaderDb } from './reader.ts';
