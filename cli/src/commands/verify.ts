import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parseVerifierKey, verifyReceipt } from '@connect/crypto';
import { loadConfig, openDatabase } from '@connect/db';
import { auditLedger, readHead } from '@connect/ledger';
import { progressBar } from '../progress.ts';
import { verifyRemote } from './verify-remote.ts';

/** connect verify ledger | receipt FILE --key KEY */
export async function verifyCommand(args: string[]): Promise<number> {
  if (args[0] === 'receipt') return verifyReceiptFile(args.slice(1));
  if (args[0] === 'remote') return verifyRemote(args.slice(1));
  if (args[0] !== 'ledger')
    throw new Error('usage: connect verify ledger | receipt FILE --key VERIFIER_KEY | remote --url URL');
  return verifyLedger();
}

/** Offline: a receipt bundle checked against a key the user trusts; no server is asked. */
async function verifyReceiptFile(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { key: { type: 'string' } },
  });
  const file = positionals[0];
  if (!file) throw new Error('usage: connect verify receipt FILE --key VERIFIER_KEY');
  const bundle = JSON.parse(await readFile(file, 'utf8')) as unknown;
  const trusted = values.key ? parseVerifierKey(values.key) : undefined;
  if (!trusted)
    console.warn(
      'warning: no --key given; trusting the key inside the receipt. Pin the ledger key with --key.',
    );
  const result = verifyReceipt(bundle, trusted);
  for (const check of result.checks) {
    console.log(`${check.ok ? 'ok  ' : 'FAIL'} ${check.name}${check.detail ? ` — ${check.detail}` : ''}`);
  }
  console.log(result.valid ? 'receipt verified' : 'receipt does NOT verify');
  return result.valid ? 0 : 1;
}

/** The audit, streamed with progress; exits 1 naming the first bad entry. */
async function verifyLedger(): Promise<number> {
  const database = await openDatabase(loadConfig(process.env), { create: false });
  try {
    const head = await readHead(database.db);
    if (!head) {
      console.log('the ledger is empty: nothing to verify');
      return 0;
    }
    // The key the ledger was started with: every checkpoint must be signed by it.
    const key = parseVerifierKey(head.verifierKey);
    const startedAt = performance.now();
    const interactive = process.stderr.isTTY;
    const result = await auditLedger(database.db, key, {
      onProgress: ({ checked, total }) => {
        const line = progressBar(checked, total, startedAt);
        if (interactive) process.stderr.write(`\r${line}`);
      },
    });
    if (interactive) process.stderr.write('\n');
    if (result.ok) {
      console.log(
        `ledger ${head.origin} verified: ${result.treeSize} entries, ${result.checkpoints} checkpoints`,
      );
      return 0;
    }
    const where = result.index === null ? '' : ` at entry ${result.index}`;
    console.error(`ledger ${head.origin} FAILED verification${where}: ${result.problem}`);
    return 1;
  } finally {
    await database.close();
  }
}
