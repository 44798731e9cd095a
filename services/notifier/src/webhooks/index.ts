export * from './address.ts';
export * from './deliver.ts';
export * from './retry.ts';
export * from './sign.ts';
export * from './store.ts';
