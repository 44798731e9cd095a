// The one error the domain throws: a command that may not happen, with a reason a person can act on.

/**
 * forbidden: not this actor's to do (403); conflict: not in this state (409); invalid: bad values
 * (400); not-found: no such commitment, or not visible to this actor (404); stale: the commitment
 * is not at the version the actor saw (412); busy: it changes too fast to apply this now (409).
 */
export type RefusalKind = 'forbidden' | 'conflict' | 'invalid' | 'not-found' | 'stale' | 'busy';

export class Refusal extends Error {
  constructor(
    readonly kind: RefusalKind,
    readonly reason: string,
    readonly field?: string,
    /** The policy rule that refused it, when a configurable one did (e.g. `createdBy: verified`). */
    readonly rule?: string,
  ) {
    super(reason);
  }
}

export function refuse(reason: string): never {
  throw new Refusal('conflict', reason);
}

export function forbid(reason: string): never {
  throw new Refusal('forbidden', reason);
}

/** Forbidden by a configurable policy: the reason, and the rule a client can show or branch on. */
export function forbidByRule(rule: string, reason: string): never {
  throw new Refusal('forbidden', reason, undefined, rule);
}

export function invalid(field: string, reason: string): never {
  throw new Refusal('invalid', reason, field);
}

export function unreachable(value: never): never {
  throw new Error(`unhandled case ${JSON.stringify(value)}`);
}
