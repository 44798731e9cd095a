import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfig, openDatabase } from '@connect/db';
import { openLedgerRuntime } from '@connect/ledger';
import { progressBar } from '../progress.ts';
import { importFromSupabase } from '../supabase/import.ts';
import { formatReport, summarize } from '../supabase/report.ts';
import { openSource } from '../supabase/source.ts';

/**
 * connect migrate-from-supabase --source URL [--storage DIR] [--report FILE]: imports a Supabase
 * project's users, types and commitments (cli/src/supabase). Exits 1 when a row failed.
 */
export async function migrateFromSupabaseCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { source: { type: 'string' }, storage: { type: 'string' }, report: { type: 'string' } },
  });
  if (!values.source) {
    console.error(
      'connect: usage: connect migrate-from-supabase --source URL [--storage DIR] [--report FILE]',
    );
    return 2;
  }
  const config = loadConfig(process.env);
  const database = await openDatabase(config, { create: false });
  const runtime = await openLedgerRuntime({ ...config, databaseUrl: database.url }).catch(async (error) => {
    await database.close();
    throw error;
  });
  const source = await openSource(values.source);
  const startedAt = new Date();
  const clock = performance.now();
  let last = 0;
  try {
    const rows = await importFromSupabase(
      source,
      {
        db: runtime.database.db,
        ledger: runtime.ledger,
        dataDir: config.dataDir,
        providers: config.oidcProviders.map((p) => p.name),
      },
      {
        storageDir: values.storage,
        onProgress: ({ phase, done, total }) => {
          if (performance.now() - last < 500 && done < total) return;
          last = performance.now();
          const line = `${phase}s ${progressBar(done, total, clock, 'rows')}`;
          process.stderr.write(process.stderr.isTTY ? `\r${line}` : `${line}\n`);
        },
      },
    );
    if (process.stderr.isTTY) process.stderr.write('\n');
    const report = summarize(rows, startedAt, new Date());
    console.log(formatReport(report));
    if (values.report) await writeFile(values.report, `${JSON.stringify(report, null, 2)}\n`);
    const failed = Object.values(report.counts).reduce((sum, c) => sum + c.failed, 0);
    return failed > 0 ? 1 : 0;
  } finally {
    await source.close();
    await runtime.close();
    await database.close();
  }
}
