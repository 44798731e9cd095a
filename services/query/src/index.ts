export * from './app.ts';
export { queryOperations } from './openapi.ts';
