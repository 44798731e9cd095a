export * from './authenticate.ts';
export * from './session-gate.ts';
export * from './tokens.ts';
