import { parseArgs } from 'node:util';
import { loadConfig, migrate } from '@connect/db';
import { readHead } from '@connect/ledger';
import { PROJECTIONS, projectionNamed, replayProjection } from '@connect/projector';
import { openLedgerReader } from '../ledger-reader.ts';
import { progressBar } from '../progress.ts';

/**
 * connect replay [--projection NAME]: rebuilds read models from the ledger beside the live ones,
 * then swaps them in; the service keeps answering throughout.
 */
export async function replayCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { projection: { type: 'string' } } });
  const chosen = values.projection === undefined ? PROJECTIONS : [projectionNamed(values.projection)];
  if (chosen.some((p) => p === undefined)) {
    console.error(
      `connect: no projection "${values.projection}"; there are ${PROJECTIONS.map((p) => p.name).join(', ')}`,
    );
    return 2;
  }
  const config = loadConfig(process.env);
  const reader = await openLedgerReader(config);
  const { database, cipher } = reader;
  try {
    await migrate(database.pool);
    const head = await readHead(database.db);
    const origin = head?.origin ?? '';
    for (const projection of chosen) {
      if (!projection) continue;
      const startedAt = performance.now();
      let last = 0;
      const result = await replayProjection({ pool: database.pool, origin, cipher }, projection, {
        onProgress: (progress) => {
          if (!process.stderr.isTTY && performance.now() - last < 1000) return;
          last = performance.now();
          const line = `${projection.name} ${progressBar(progress.projected, progress.total, startedAt, 'events')}`;
          process.stderr.write(process.stderr.isTTY ? `\r${line}` : `${line}\n`);
        },
      });
      if (process.stderr.isTTY) process.stderr.write('\n');
      console.log(
        `${result.projection}: rebuilt from ${result.events} events in ${result.seconds.toFixed(1)} s (${Math.round(result.events / Math.max(result.seconds, 0.001))}/s), now at index ${result.lastIndex}`,
      );
      for (const q of result.quarantined) {
        console.log(`${result.projection}: ${q.stream} still set aside at entry ${q.index}: ${q.error}`);
      }
    }
    return 0;
  } finally {
    await reader.close();
  }
}
