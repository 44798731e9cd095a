export * from './app.ts';
export * from './batch.ts';
export * from './projection.ts';
export * from './projections/index.ts';
export * from './replay.ts';
export * from './runner.ts';
