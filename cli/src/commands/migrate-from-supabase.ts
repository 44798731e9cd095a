import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfig, openDatabase } from '@connect/db';
import { openLedgerRuntime } from '@connect/ledger';
import { progressBar } from '../progress.ts';
import { type ChangesMode, followSupabase, ReplicationUnavailable, sourceKey } from '../supabase/follow.ts';
import { importFromSupabase } from '../supabase/import.ts';
import { formatReport, type RowReport, summarize } from '../supabase/report.ts';
import { openSource } from '../supabase/source.ts';

/**
 * connect migrate-from-supabase --source URL [--storage DIR] [--report FILE]: imports a Supabase
 * project's users, types and commitments (cli/src/supabase). Exits 1 when a row failed. With
 * --follow it goes on importing what changes in the source until stopped (SIGINT, SIGTERM), learning
 * of them by logical replication where the source allows it, else by polling (--changes).
 */
export async function migrateFromSupabaseCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      source: { type: 'string' },
      storage: { type: 'string' },
      report: { type: 'string' },
      follow: { type: 'boolean', default: false },
      interval: { type: 'string', default: '1000' },
      changes: { type: 'string', default: 'auto' },
    },
  });
  const intervalMs = Number(values.interval);
  const changes = values.changes as ChangesMode;
  if (
    !values.source ||
    !Number.isInteger(intervalMs) ||
    intervalMs < 50 ||
    !['poll', 'replication', 'auto'].includes(changes)
  ) {
    console.error(
      'connect: usage: connect migrate-from-supabase --source URL [--storage DIR] [--report FILE] [--follow [--changes poll|replication|auto] [--interval MS (≥ 50)]]',
    );
    return 2;
  }
  const config = loadConfig(process.env);
  const database = await openDatabase(config, { create: false });
  const runtime = await openLedgerRuntime({ ...config, databaseUrl: database.url }).catch(async (error) => {
    await database.close();
    throw error;
  });
  const source = await openSource(values.source).catch(async (error: unknown) => {
    await runtime.close();
    await database.close();
    throw error;
  });
  const startedAt = new Date();
  const clock = performance.now();
  let last = 0;
  const deps = {
    db: runtime.database.db,
    ledger: runtime.ledger,
    dataDir: config.dataDir,
    keys: runtime.keys,
    encryption: config.encryption,
    providers: config.oidcProviders.map((p) => p.name),
  };
  const onProgress = ({ phase, done, total }: { phase: string; done: number; total: number }) => {
    if (performance.now() - last < 500 && done < total) return;
    last = performance.now();
    const line = `${phase}s ${progressBar(done, total, clock, 'rows')}`;
    process.stderr.write(process.stderr.isTTY ? `\r${line}` : `${line}\n`);
  };
  const finish = async (rows: RowReport[]) => {
    if (process.stderr.isTTY) process.stderr.write('\n');
    const report = summarize(rows, startedAt, new Date());
    console.log(formatReport(report));
    if (values.report) await writeFile(values.report, `${JSON.stringify(report, null, 2)}\n`);
    return Object.values(report.counts).reduce((sum, c) => sum + c.failed, 0);
  };
  try {
    if (!values.follow) {
      const failed = await finish(
        await importFromSupabase(source, deps, {
          storageDir: values.storage,
          // The ledger appends on a pool of its own: the accounts' transactions cannot starve it.
          userConcurrency: 16,
          onProgress,
        }),
      );
      return failed > 0 ? 1 : 0;
    }
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      await followSupabase(source, deps, sourceKey(values.source), {
        storageDir: values.storage,
        // The ledger appends on a pool of its own: the accounts' transactions cannot starve it.
        userConcurrency: 16,
        intervalMs,
        changes,
        sourceUrl: values.source,
        signal: stop.signal,
        onProgress,
        onFirstPass: async (rows, feed) => {
          await finish(rows);
          console.log(
            feed.by === 'replication'
              ? `following the source by logical replication (slot ${feed.slot}); stop with Ctrl-C`
              : `following the source by polling every ${intervalMs} ms${feed.reason ? ` (${feed.reason})` : ''}; stop with Ctrl-C`,
          );
        },
        onPass: (pass) => {
          if (pass.commitments === 0 && pass.users === 0) return;
          const lag = pass.lagsMs.length > 0 ? `, lag ${Math.round(Math.max(...pass.lagsMs))} ms` : '';
          console.log(
            `${pass.at.toISOString()} ${pass.users} users, ${pass.commitments} commitments changed: ${pass.events} events${lag}`,
          );
          for (const row of pass.reports)
            console.log(`  ${row.outcome} ${row.kind} ${row.sourceId}: ${row.reasons.join('; ')}`);
        },
      });
    } catch (error) {
      if (!(error instanceof ReplicationUnavailable)) throw error;
      console.error(`connect: ${error.message}; follow by polling with --changes poll`);
      return 2;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return 0;
  } finally {
    await source.close();
    await runtime.close();
    await database.close();
  }
}
