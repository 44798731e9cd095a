// npm run bench -- verify: a ledger of BENCH_VERIFY_ENTRIES entries (default 200,000) with one
// 20-event commitment in it, then
//   verify.receipt     POST /v1/ledger/verify of that commitment's receipt bundle, one at a time
//                      (and the same check offline, in this process, with libs/crypto)
//   verify.proof       inclusion and consistency proof endpoints, 64 connections
//   verify.audit       the full audit (every dataHash, leaf, stored subtree and checkpoint)
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseVerifierKey, signingKeyFromSeed, toBase64, verifyReceipt } from '@connect/crypto';
import { commitmentStream } from '@connect/domain';
import { auditLedger, buildReceipt, openLedger, withNativeSigner } from '@connect/ledger';
import { startProjector } from '@connect/projector';
import { replayReceipt } from '@connect/query';
import autocannon from 'autocannon';
import type { FastifyBaseLogger } from 'fastify';
import {
  benchDatabase,
  describeTrials,
  type Metrics,
  machineKeys,
  openLoopTrials,
  percentile,
  round,
  settle,
  startConnect,
  stopConnect,
} from './support.ts';

const ENTRIES = Number(process.env.BENCH_VERIFY_ENTRIES ?? 200_000);
const CONNECTIONS = 64;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ORIGIN = 'bench.connect.local/ledger';
const SEED = new Uint8Array(32).fill(44);
const quiet = { info() {}, warn() {}, error() {} } as unknown as FastifyBaseLogger;

function twentyEvents(creator: string) {
  return [
    {
      type: 'CommitmentDrafted',
      schema: 2,
      data: {
        type: 'personal',
        creatorId: creator,
        title: 'Twenty steps',
        description: '',
        terms: '',
        amount: null,
        dueAt: null,
      },
    },
    ...Array.from({ length: 19 }, (_, i) => ({
      type: 'CommitmentUpdated',
      data: { changes: { terms: `Step ${i + 1}` } },
    })),
  ];
}

export async function benchVerify(): Promise<Metrics> {
  const database = await benchDatabase(16);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'connect-bench-verify-'));
  await chmod(dataDir, 0o711);
  const key = withNativeSigner(signingKeyFromSeed(ORIGIN, SEED));
  const ledger = await openLedger({ pool: database.pool, db: database.db, origin: ORIGIN, key });
  let server: Awaited<ReturnType<typeof startConnect>> | undefined;
  try {
    console.log(`growing the ledger to ${ENTRIES} entries, one commitment of 20 events among them…`);
    const id = randomUUID();
    let size = 0;
    while (size < ENTRIES) {
      if (size >= ENTRIES / 2 && size < ENTRIES / 2 + 1000) {
        await ledger.append({
          stream: commitmentStream(id),
          expectedVersion: 'no_stream',
          actor: 'bench',
          events: twentyEvents('bench'),
        });
        size += 20;
      }
      const count = Math.min(1000, ENTRIES - size);
      await ledger.append({
        stream: `bulk-${size % 997}`,
        expectedVersion: 'any',
        actor: null,
        events: Array.from({ length: count }, (_, k) => ({ type: 'BulkRecorded', data: { k, size } })),
      });
      size += count;
    }
    await ledger.drain();
    const verifier = parseVerifierKey(ledger.verifierKey);

    const bundle = await buildReceipt(
      {
        db: database.db,
        pool: database.pool,
        origin: ORIGIN,
        cipher: ledger.cipher,
        verifierKey: ledger.verifierKey,
        key,
      },
      commitmentStream(id),
    );
    const receipt = { ...bundle, state: replayReceipt(bundle.entries) };
    const offline: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      if (!verifyReceipt(receipt, verifier, { replay: replayReceipt }).valid)
        throw new Error('the receipt does not verify');
      offline.push(performance.now() - t0);
    }
    offline.sort((a, b) => a - b);

    console.log('audit…');
    const auditStarted = performance.now();
    const audit = await auditLedger(database.db, verifier);
    const auditSeconds = (performance.now() - auditStarted) / 1000;
    if (!audit.ok) throw new Error(`audit failed: ${audit.problem}`);
    console.log(
      `  ${audit.treeSize} entries, ${audit.checkpoints} checkpoints in ${auditSeconds.toFixed(1)} s`,
    );

    // The read models catch up first, so the server's projector is idle while it is timed.
    const projector = startProjector({
      pool: database.pool,
      origin: ORIGIN,
      cipher: ledger.cipher,
      log: quiet,
    });
    for (;;) {
      const { rows } = await database.pool.query<{ n: number }>(
        'select min(last_index)::bigint as n from projection_checkpoints',
      );
      if ((rows[0]?.n ?? -1) >= audit.treeSize - 1) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await projector.close();
    await settle(database.pool);

    server = await startConnect({
      DATABASE_URL: database.url,
      CONNECT_DATA_DIR: dataDir,
      CONNECT_LEDGER_ORIGIN: ORIGIN,
      CONNECT_LEDGER_KEY: toBase64(SEED),
    });
    const url = server.url;
    const body = JSON.stringify({ receipt });
    const online: number[] = [];
    const deadline = performance.now() + SECONDS * 1000;
    while (performance.now() < deadline) {
      const t0 = performance.now();
      const response = await fetch(`${url}/v1/ledger/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      const result = (await response.json()) as { valid: boolean };
      if (!result.valid) throw new Error('the server does not verify the receipt');
      online.push(performance.now() - t0);
    }
    online.sort((a, b) => a - b);
    console.log(
      `  receipt over HTTP: ${online.length} checks, p50 ${round(percentile(online, 50))} ms, p99 ${round(percentile(online, 99))} ms`,
    );

    const treeSize = audit.treeSize;
    const random = (n: number) => Math.floor(Math.random() * n);
    const proofPath = () => {
      const size = 1 + random(treeSize);
      return random(2) === 0
        ? `/v1/ledger/proofs/inclusion?index=${random(size)}&treeSize=${size}`
        : `/v1/ledger/proofs/consistency?from=${1 + random(size)}&to=${size}`;
    };
    const proofRun = () =>
      autocannon({
        url,
        connections: CONNECTIONS,
        duration: SECONDS,
        requests: [
          {
            method: 'GET',
            setupRequest: (base) => ({ ...base, path: proofPath() }),
          },
        ],
      } as autocannon.Options);
    const proofs = await proofRun();
    console.log(
      `  proofs: ${proofs['2xx']} 2xx, ${proofs.non2xx} not, p50 ${proofs.latency.p50} ms, p99 ${proofs.latency.p99} ms`,
    );
    // Open loop at 70 % of the rate just measured: the latency a steady load sees.
    const proofRate = (0.7 * proofs['2xx']) / SECONDS;
    const proofsAt70 = await openLoopTrials(
      url,
      proofRate,
      SECONDS,
      () => ({ path: proofPath() }),
      server.child.pid,
    );
    console.log(
      `  proofs at 70 % (open loop, ${round(proofRate, 0)}/s): ${proofsAt70.non2xx} not 2xx, p50 ${proofsAt70.p50} ms, ${describeTrials(proofsAt70)}`,
    );

    return {
      'verify.ledger_entries': { value: treeSize, unit: 'entries' },
      'verify.receipt.p50_ms': { value: round(percentile(online, 50)), unit: 'ms' },
      'verify.receipt.p99_ms': { value: round(percentile(online, 99)), unit: 'ms' },
      'verify.receipt.offline_p99_ms': { value: round(percentile(offline, 99)), unit: 'ms' },
      'verify.proof.per_s': { value: round(proofs['2xx'] / SECONDS, 0), unit: 'requests/s' },
      'verify.proof.p50_ms': { value: proofs.latency.p50, unit: 'ms' },
      'verify.proof.p99_ms': { value: proofs.latency.p99, unit: 'ms' },
      'verify.proof.non_2xx': { value: proofs.non2xx + proofsAt70.non2xx, unit: 'responses' },
      'verify.proof.p99_ms_at_70pct': { value: proofsAt70.p99, unit: 'ms' },
      'verify.proof.floor_p99_ms_at_70pct': { value: proofsAt70.floor, unit: 'ms' },
      ...machineKeys('verify.proof', proofsAt70),
      'verify.audit.entries_per_s': { value: round(treeSize / auditSeconds, 0), unit: 'entries/s' },
    };
  } finally {
    if (server) await stopConnect(server.child);
    await ledger.drain();
    await database.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}
