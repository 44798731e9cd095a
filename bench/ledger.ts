// npm run bench -- ledger: appends to the ledger from 64 clients, beside the same rows written by
// plain INSERTs (the hardware's floor) and by Emmett's PostgreSQL event store (a peer), in turns.

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fromBase64, signingKeyFromSeed, verifyInclusion } from '@connect/crypto';
import { inclusionProof, type Ledger, latestCheckpoint, openLedger, withNativeSigner } from '@connect/ledger';
import pg from 'pg';
import { benchDatabase, benchEvent, closedLoop, type Metrics, median, percentile, round } from './support.ts';

const CLIENTS = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = 3;
const PROOF_TREE_SIZE = Number(process.env.BENCH_PROOF_TREE_SIZE ?? 1_000_000);

/** Single-event appends, each awaited, from 64 concurrent clients. */
export async function appendRate(ledger: Ledger, seconds: number) {
  return closedLoop(CLIENTS, seconds, async (c, i) => {
    const result = await ledger.append({
      stream: `stream-${c}`,
      expectedVersion: 'any',
      actor: `user-${c}`,
      events: [benchEvent(c, i)],
    });
    if (result.outcome !== 'appended') throw new Error(`append ${result.outcome}`);
  });
}

const EMMETT_PEER = fileURLToPath(new URL('./emmett-peer.ts', import.meta.url));

/** The same appends through Emmett's PostgreSQL event store, in a process of its own (emmett-peer.ts). */
async function emmettRate(url: string, seconds: number) {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', EMMETT_PEER, url, String(CLIENTS), String(seconds)],
    { maxBuffer: 256 * 2 ** 20 },
  );
  return JSON.parse(stdout) as { perSecond: number; latenciesMs: number[] };
}

export async function benchLedger(): Promise<Metrics> {
  const database = await benchDatabase(CLIENTS + 8);
  try {
    const key = withNativeSigner(
      signingKeyFromSeed('bench.connect.local/ledger', new Uint8Array(32).fill(42)),
    );
    const ledger = await openLedger({ pool: database.pool, db: database.db, origin: key.name, key });

    // The floor the hardware gives: one-row INSERT transactions from 64 connections.
    await database.pool.query(
      'create table bench_insert (id bigserial primary key, stream text not null, data jsonb not null)',
    );
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        const client = new pg.Client({ connectionString: database.url });
        // A failure ends the bench by dropping the database, which cuts these off: not an error of its own.
        client.on('error', () => undefined);
        await client.connect();
        return client;
      }),
    );
    // Take turns, so none pays for another's aftermath (checkpoints, autovacuum).
    const inserts: number[] = [];
    const appends: number[] = [];
    const emmettAppends: number[] = [];
    // Each round's latencies apart: a fast machine records more than one call's arguments can take.
    const insertRuns: number[][] = [];
    const appendRuns: number[][] = [];
    const emmettRuns: number[][] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      console.log(
        `round ${round}/${ROUNDS}: plain INSERTs from ${CLIENTS} connections, ${CLIENTS} appenders, ${CLIENTS} Emmett appenders, ${SECONDS}s each`,
      );
      const insert = await closedLoop(CLIENTS, SECONDS, async (c, i) => {
        await (clients[c] as pg.Client).query('insert into bench_insert (stream, data) values ($1, $2)', [
          `stream-${c}`,
          JSON.stringify({ client: c, i, note: 'a commitment was made' }),
        ]);
      });
      const append = await appendRate(ledger, SECONDS);
      const peer = await emmettRate(database.url, SECONDS);
      emmettAppends.push(peer.perSecond);
      emmettRuns.push(peer.latenciesMs);
      inserts.push(insert.perSecond);
      appends.push(append.perSecond);
      insertRuns.push(insert.latenciesMs);
      appendRuns.push(append.latenciesMs);
    }
    await Promise.all(clients.map((client) => client.end()));
    const insertLatencies = insertRuns.flat().sort((a, b) => a - b);
    const appendLatencies = appendRuns.flat().sort((a, b) => a - b);
    const emmettLatencies = emmettRuns.flat().sort((a, b) => a - b);
    const insert = { perSecond: median(inserts), latenciesMs: insertLatencies };
    const append = { perSecond: median(appends), latenciesMs: appendLatencies };

    // Grow the ledger to the proof tree size with large appends, then time proofs at that size.
    const start = (await latestCheckpoint(database.db))?.treeSize ?? 0;
    console.log(`growing the ledger from ${start} to ${PROOF_TREE_SIZE} entries…`);
    const rssBefore = process.memoryUsage().rss;
    let size = start;
    const growStarted = performance.now();
    let lastReport = performance.now();
    while (size < PROOF_TREE_SIZE) {
      const batch = Math.min(1000, PROOF_TREE_SIZE - size);
      const parts = [Math.ceil(batch / 2), Math.floor(batch / 2)].filter((n) => n > 0);
      await Promise.all(
        parts.map((count, part) =>
          ledger.append({
            stream: `bulk-${size % 997}-${part}`,
            expectedVersion: 'any',
            actor: null,
            events: Array.from({ length: count }, (_, k) => ({ type: 'BulkRecorded', data: { k, size } })),
          }),
        ),
      );
      size += batch;
      if (performance.now() - lastReport > 5000) {
        lastReport = performance.now();
        const rate = (size - start) / ((performance.now() - growStarted) / 1000);
        process.stdout.write(
          `  ${size} entries, ${Math.round(rate)}/s, rss ${Math.round(process.memoryUsage().rss / 2 ** 20)} MB\n`,
        );
      }
    }
    const checkpoint = await latestCheckpoint(database.db);
    const treeSize = checkpoint?.treeSize ?? 0;
    const proofTimes: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const index = Math.floor(Math.random() * treeSize);
      const t0 = performance.now();
      const proof = await inclusionProof(database.pool, index, treeSize);
      proofTimes.push(performance.now() - t0);
      if (i % 200 === 0) {
        const ok = verifyInclusion(
          { index, treeSize, hashes: proof.hashes.map(fromBase64) },
          fromBase64(proof.leafHash),
          checkpoint?.rootHash ?? new Uint8Array(),
        );
        if (!ok) throw new Error(`proof of ${index} does not verify`);
      }
    }
    proofTimes.sort((a, b) => a - b);
    const rssAfter = process.memoryUsage().rss;

    return {
      'ledger.insert_baseline.per_s': { value: round(insert.perSecond, 0), unit: 'inserts/s' },
      'ledger.insert_baseline.p99_ms': { value: round(percentile(insert.latenciesMs, 99)), unit: 'ms' },
      'ledger.append.per_s': { value: round(append.perSecond, 0), unit: 'appends/s' },
      'ledger.append.p50_ms': { value: round(percentile(append.latenciesMs, 50)), unit: 'ms' },
      'ledger.append.p99_ms': { value: round(percentile(append.latenciesMs, 99)), unit: 'ms' },
      'ledger.append.ratio_to_insert': {
        value: round(append.perSecond / insert.perSecond, 3),
        unit: 'ratio',
      },
      'ledger.emmett.per_s': { value: round(median(emmettAppends), 0), unit: 'appends/s' },
      'ledger.emmett.p99_ms': { value: round(percentile(emmettLatencies, 99)), unit: 'ms' },
      'ledger.append.ratio_to_emmett': {
        value: round(append.perSecond / median(emmettAppends), 3),
        unit: 'ratio',
      },
      'ledger.proof.tree_size': { value: treeSize, unit: 'entries' },
      'ledger.proof.inclusion.p50_ms': { value: round(percentile(proofTimes, 50), 3), unit: 'ms' },
      'ledger.proof.inclusion.p99_ms': { value: round(percentile(proofTimes, 99), 3), unit: 'ms' },
      'ledger.grow.per_s': {
        value: round((size - start) / ((performance.now() - growStarted) / 1000), 0),
        unit: 'entries/s',
      },
      'ledger.grow.rss_delta_mb': { value: round((rssAfter - rssBefore) / 2 ** 20, 1), unit: 'MB' },
    };
  } finally {
    await database.close();
  }
}
