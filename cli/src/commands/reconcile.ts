import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfig } from '@connect/db';
import { readHead } from '@connect/ledger';
import { openLedgerReader } from '../ledger-reader.ts';
import { progressBar } from '../progress.ts';
import { formatReconcile } from '../supabase/reconcile.ts';
import { reconcileWithSupabase } from '../supabase/reconcile-run.ts';
import { openSource } from '../supabase/source.ts';

/**
 * connect reconcile --source URL [--storage DIR] [--report FILE]: compares a Supabase project with
 * what Connect serves (cli/src/supabase/reconcile.ts), one line per difference. Exits 1 on any drift.
 */
export async function reconcileCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { source: { type: 'string' }, storage: { type: 'string' }, report: { type: 'string' } },
  });
  if (!values.source) {
    console.error('connect: usage: connect reconcile --source URL [--storage DIR] [--report FILE]');
    return 2;
  }
  const config = loadConfig(process.env);
  const reader = await openLedgerReader(config);
  const { database, cipher } = reader;
  try {
    const origin = (await readHead(database.db))?.origin ?? '';
    const source = await openSource(values.source);
    const clock = performance.now();
    let last = 0;
    const report = await reconcileWithSupabase(
      source,
      { db: database.db, origin, cipher },
      {
        storageDir: values.storage,
        onProgress: ({ phase, done, total }) => {
          if (performance.now() - last < 500 && done < total) return;
          last = performance.now();
          const line = `${phase}s ${progressBar(done, total, clock, 'rows')}`;
          process.stderr.write(process.stderr.isTTY ? `\r${line}` : `${line}\n`);
        },
      },
    ).finally(() => source.close());
    if (process.stderr.isTTY) process.stderr.write('\n');
    console.log(formatReconcile(report));
    if (values.report) await writeFile(values.report, `${JSON.stringify(report, null, 2)}\n`);
    return report.differences.length > 0 ? 1 : 0;
  } finally {
    await reader.close();
  }
}
