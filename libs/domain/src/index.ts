export * from './commitment/commands.ts';
export * from './commitment/decide.ts';
export * from './commitment/events.ts';
export * from './commitment/evolve.ts';
export * from './commitment/policy.ts';
export * from './commitment/state.ts';
export * from './commitment/types.ts';
export * from './refusal.ts';
