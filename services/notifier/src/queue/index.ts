export * from './dead-letters.ts';
export * from './enqueue.ts';
export * from './jobs.ts';
export * from './metrics.ts';
export * from './setup.ts';
export * from './tasks.ts';
export * from './worker.ts';
