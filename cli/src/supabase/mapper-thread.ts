// The mapping thread (see mapper.ts): answers each request in turn, reading the commitments from
// the shared snapshot and mapping those whose streams are new.
import { parentPort } from 'node:worker_threads';
import { type FileFacts, mapCommitment } from './map-commitments.ts';
import type { CommitmentInput, FromMapper, ToMapper } from './mapper.ts';
import { openSource, type Source, type SourceCommitmentRows } from './source.ts';
import { factsOf } from './storage-export.ts';

const port = parentPort;
if (!port) throw new Error('mapper-thread.ts runs as a worker thread (see mapper.ts)');

let source: Promise<Source> | undefined;
// Every commitment of the snapshot in order; requests ask for them in that order too.
let every: AsyncIterator<SourceCommitmentRows> | undefined;
let storageDir: string | undefined;
let typeKeys: ReadonlyMap<string, string> = new Map();
let users: ReadonlySet<string> = new Set();
// One request at a time, in order: they share the source's connection.
let turn = Promise.resolve();

async function mapped(rows: SourceCommitmentRows): Promise<CommitmentInput> {
  const { commitment, documents } = rows;
  let files = new Map<string, FileFacts>();
  try {
    files = await factsOf(storageDir, documents);
    const decision = mapCommitment(rows, { typeKeys, users, files });
    return {
      id: commitment.id,
      documents,
      files,
      decision:
        decision.outcome === 'import'
          ? { outcome: 'import', events: decision.events, reasons: decision.reasons }
          : decision,
    };
  } catch (error) {
    return {
      id: commitment.id,
      documents,
      files,
      decision: { outcome: 'failed', reasons: [(error as Error).message] },
    };
  }
}

/**
 * The commitments of `ids` (in the snapshot's order, as the requests come) read on through every
 * commitment: each table is read once for the whole pass rather than scanned once per batch.
 */
async function inOrder(opened: Source, ids: string[]): Promise<SourceCommitmentRows[]> {
  every ??= opened.everyCommitment()[Symbol.asyncIterator]();
  const wanted = new Set(ids);
  const found = new Map<string, SourceCommitmentRows>();
  while (wanted.size > 0) {
    const next = await every.next();
    if (next.done) break;
    if (wanted.delete(next.value.commitment.id)) found.set(next.value.commitment.id, next.value);
  }
  // Not met in order (never, from importCommitments): read apart.
  for (const rows of wanted.size > 0 ? await opened.commitments([...wanted]) : [])
    found.set(rows.commitment.id, rows);
  return ids.flatMap((id) => found.get(id) ?? []);
}

async function answer(message: Extract<ToMapper, { kind: 'map' }>): Promise<FromMapper> {
  try {
    if (!source) throw new Error('the mapping thread was asked before it began');
    const rows = await inOrder(await source, message.ids);
    const commitments = await Promise.all(
      rows.map((row) => (message.existing.has(row.commitment.id) ? row : mapped(row))),
    );
    return { request: message.request, commitments };
  } catch (error) {
    return { request: message.request, error: (error as Error).message };
  }
}

port.on('message', (message: ToMapper) => {
  if (message.kind === 'start') {
    ({ storageDir, typeKeys, users } = message);
    source = openSource(message.snapshot.url, { snapshot: message.snapshot.snapshot });
    source.catch(() => undefined); // told to each request
    return;
  }
  if (message.kind === 'map') {
    turn = turn.then(async () => port.postMessage(await answer(message)));
    return;
  }
  turn = turn.then(async () => {
    await source?.then((opened) => opened.close()).catch(() => undefined);
    port.close();
  });
});
