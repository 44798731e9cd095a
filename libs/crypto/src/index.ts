export * from './bytes.ts';
export * from './checkpoint.ts';
export * from './entry.ts';
export * from './jcs.ts';
export * from './keys.ts';
export * from './merkle.ts';
export * from './proofs.ts';
export * from './sha256.ts';
