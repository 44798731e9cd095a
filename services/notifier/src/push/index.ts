export * from './deliver.ts';
export * from './keys.ts';
export * from './subscriptions.ts';
