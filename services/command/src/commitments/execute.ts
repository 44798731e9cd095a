// Runs one command: load the commitment, decide, append with optimistic concurrency, answer
// with a receipt. Losing a race without If-Match decides again on the new state.
import { randomUUID } from 'node:crypto';
import type { JsonObject } from '@connect/crypto';
import type { Database } from '@connect/db';
import {
  type Commitment,
  type CommitmentCommand,
  type CommitmentEvent,
  CURRENT_SCHEMA,
  canSee,
  commitmentIdOf,
  commitmentStream,
  decide,
  evolve,
  initialState,
  Refusal,
  readsEverything,
  type UserRole,
} from '@connect/domain';
import { type Entry, entriesAppendedUnder, type Ledger } from '@connect/ledger';
import type { Kysely } from 'kysely';
import type { CommandLanes } from './command-lanes.ts';
import { loadCommitment, type TypeRegistry } from './load.ts';
import { peopleFacts } from './people.ts';
import type { StateCache } from './state-cache.ts';

export interface Receipt {
  commitmentId: string;
  version: number;
  events: { index: number; id: string; type: string; leafHash: string }[];
}

export interface ExecuteDeps {
  db: Kysely<Database>;
  ledger: Ledger;
  types: TypeRegistry;
  states: StateCache;
  lanes: CommandLanes;
  now?: () => Date;
}

const MAX_ATTEMPTS = 5;

/** The commitment is not there for this caller: unknown, or not theirs to see (the same answer). */
export const notFound = (): Refusal =>
  new Refusal('not-found', 'No such commitment, or it is not visible to you.');

/** If-Match: the command is for the version the client saw, or it is refused as stale. */
export function mustBeAtVersion(state: Commitment, ifMatch: number | undefined): void {
  if (ifMatch !== undefined && state.version !== ifMatch) {
    throw new Refusal(
      'stale',
      `The commitment is at version ${state.version}, not ${ifMatch}; reload it and retry.`,
    );
  }
}

/**
 * The state to decide on: nothing to load for a create (a new random id; the ledger refuses a
 * second version 1), the state this process last wrote when it has one, else the stored stream.
 * A stale If-Match against a cached state is checked against the stored stream before a 412.
 * `cached`: the state is this process's own, which another process may have moved on since.
 */
async function currentState(
  deps: ExecuteDeps,
  commitmentId: string,
  command: CommitmentCommand,
  attempt: number,
  ifMatch: number | undefined,
): Promise<{ state: Commitment; cached: boolean }> {
  if (command.action === 'create' && attempt === 1)
    return { state: initialState(commitmentId), cached: false };
  const cached = attempt === 1 ? deps.states.get(commitmentId) : undefined;
  if (cached && (ifMatch === undefined || cached.version === ifMatch)) return { state: cached, cached: true };
  return { state: await loadCommitment(deps.db, deps.ledger, commitmentId), cached: false };
}

type CommandInput = {
  commitmentId: string;
  command: CommitmentCommand;
  /** Who acts; userId null is the system itself (for the commands only it may give). */
  actor: { userId: string | null; isAdmin: boolean; roles?: readonly UserRole[] };
  /** The version the client saw (If-Match); a moved commitment is then a 412. */
  ifMatch?: number;
  correlationId: string;
  /** More to record in each event's meta (e.g. where the command came from). */
  meta?: JsonObject;
  /**
   * The ledger idempotency key to append under (an Idempotency-Key's claim): whoever runs the
   * command again under it gets the first append's receipt. `resumed`: an earlier run may have
   * appended already, so look for its append before deciding on a state that may include it.
   */
  claim?: { ledgerKey: string; resumed: boolean };
};

/** What a command answers: the entries it appended, and the version they took the commitment to. */
const receiptOf = (commitmentId: string, version: number, entries: readonly Entry[]): Receipt => ({
  commitmentId,
  version,
  events: entries.map((e) => ({ index: e.index, id: e.id, type: e.type, leafHash: e.leafHash })),
});

/** The receipt of the append recorded under a ledger idempotency key, if one committed. */
async function committedReceipt(deps: ExecuteDeps, ledgerKey: string): Promise<Receipt | undefined> {
  const entries = await entriesAppendedUnder(deps.db, deps.ledger, ledgerKey);
  const last = entries?.at(-1);
  const commitmentId = last && commitmentIdOf(last.stream);
  return entries && last && commitmentId ? receiptOf(commitmentId, last.version, entries) : undefined;
}

/** Runs the command; a refused one throws the domain's Refusal, which the error handler answers. */
export function executeCommand(deps: ExecuteDeps, input: CommandInput): Promise<Receipt> {
  return deps.lanes.run(input.commitmentId, () => decideAndAppend(deps, input));
}

async function decideAndAppend(deps: ExecuteDeps, input: CommandInput): Promise<Receipt> {
  const { commitmentId, command, actor, ifMatch } = input;
  // An auditor sees every commitment (and is then refused acting on it, 403 rather than 404).
  const seesAll = actor.isAdmin || readsEverything(actor.roles ?? []);
  const { claim } = input;
  const earlier = claim?.resumed ? await committedReceipt(deps, claim.ledgerKey) : undefined;
  if (earlier) return earlier;
  const people = await peopleFacts(deps.db, command, actor);
  // A create reads its creator's account: gone, they were erased after this request was let in.
  if (command.action === 'create' && actor.userId !== null && !people.has(actor.userId))
    throw new Refusal('forbidden', 'this account has been erased');
  for (let attempt = 1; ; attempt++) {
    const { state, cached } = await currentState(deps, commitmentId, command, attempt, ifMatch);
    let events: CommitmentEvent[];
    try {
      const visible = actor.userId === null || canSee(state, { userId: actor.userId, isAdmin: seesAll });
      if (command.action !== 'create' && (!state.exists || !visible)) throw notFound();
      // After visibility: who has an account is not told to someone who cannot see the commitment.
      if (command.action === 'invite' && !people.has(command.userId))
        throw new Refusal('invalid', 'no registered user has this id', 'userId');
      mustBeAtVersion(state, ifMatch);
      const refreshTypes = command.action === 'create' && !(await deps.types.get()).has(command.type);
      events = decide(command, state, {
        actor: actor.userId,
        now: (deps.now?.() ?? new Date()).toISOString(),
        newId: randomUUID,
        types: await deps.types.get(refreshTypes),
        people,
      });
    } catch (error) {
      // A cached state may be stale (another process appended since): what it refuses is
      // decided again on the stream as stored before the caller is told no.
      if (!cached || !(error instanceof Refusal)) throw error;
      deps.states.drop(commitmentId);
      continue;
    }
    const result = await deps.ledger.append({
      stream: commitmentStream(commitmentId),
      expectedVersion: state.exists ? state.version : 'no_stream',
      actor: actor.userId,
      idempotencyKey: claim?.ledgerKey,
      events: events.map((event) => ({
        type: event.type,
        schema: CURRENT_SCHEMA[event.type],
        // Event data is JSON by construction: zod-checked command fields and ids, no undefined values.
        data: event.data as JsonObject,
        meta: { ...input.meta, correlationId: input.correlationId, command: command.action },
      })),
    });
    if (result.outcome === 'appended') {
      const next = events.reduce(
        (s, event, i) => evolve(s, { event, at: result.entries[i]?.recordedAt ?? '' }),
        state,
      );
      if (next.version === result.streamVersion) deps.states.set(next);
      else deps.states.drop(commitmentId);
      return receiptOf(commitmentId, result.streamVersion, result.entries);
    }
    if (result.outcome === 'idempotency_key_reused' && claim) {
      // Another run of this request (one taken for abandoned, still alive) appended first.
      deps.states.drop(commitmentId);
      const first = await committedReceipt(deps, claim.ledgerKey);
      if (first) return first;
    }
    if (result.outcome !== 'version_conflict') throw new Error(`unexpected append outcome ${result.outcome}`);
    deps.states.drop(commitmentId);
    if (ifMatch !== undefined)
      throw new Refusal('stale', 'The commitment changed while this command ran; reload it and retry.');
    if (command.action === 'create') throw new Refusal('conflict', 'A commitment with this id exists.');
    if (attempt >= MAX_ATTEMPTS)
      throw new Refusal('busy', 'The commitment is changing too fast to apply this command; try again.');
  }
}
