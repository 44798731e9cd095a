export * from './metrics.ts';
export * from './openapi.ts';
export * from './problem.ts';
export * from './security.ts';
export * from './serve.ts';
export * from './server.ts';
export * from './text.ts';
export * from './validate.ts';
