import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { parseVerifierKey, type ReceiptBundle, verifyReceipt } from '@connect/crypto';
import { loadConfig } from '@connect/db';
import { auditLedger, readHead } from '@connect/ledger';
import { describeReceipt, profileNames, type ReceiptState, replayReceipt } from '@connect/query';
import { openLedgerReader } from '../ledger-reader.ts';
import { progressBar } from '../progress.ts';
import { defaultStateFile, verifyRemote } from './verify-remote.ts';

/** connect verify ledger | receipt FILE [--key KEY] | remote --url URL */
export async function verifyCommand(args: string[]): Promise<number> {
  if (args[0] === 'receipt') return verifyReceiptFile(args.slice(1));
  if (args[0] === 'remote') return verifyRemote(args.slice(1));
  if (args[0] !== 'ledger')
    throw new Error('usage: connect verify ledger | receipt FILE [--key VERIFIER_KEY] | remote --url URL');
  return verifyLedger();
}

/**
 * The key to check a receipt with: --key, else the key `connect verify remote` pinned for the
 * receipt's ledger. Never the key inside the receipt: anyone can sign a forgery with their own.
 */
async function trustedKeyFor(bundle: unknown, given: string | undefined, stateFile: string) {
  if (given) return { key: parseVerifierKey(given), from: 'the key given with --key' };
  const origin = (bundle as { origin?: unknown } | null)?.origin;
  const pinned = JSON.parse(await readFile(stateFile, 'utf8').catch(() => '{}')) as Record<
    string,
    { verifierKey?: string }
  >;
  for (const [server, { verifierKey }] of Object.entries(pinned)) {
    if (verifierKey && verifierKey.slice(0, verifierKey.indexOf('+')) === origin)
      return { key: parseVerifierKey(verifierKey), from: `the key pinned for ${server}` };
  }
  return undefined;
}

/** Offline: a receipt bundle checked against a key the user trusts; no server is asked. */
async function verifyReceiptFile(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { key: { type: 'string' }, state: { type: 'string' } },
  });
  const file = positionals[0];
  if (!file) throw new Error('usage: connect verify receipt FILE [--key VERIFIER_KEY]');
  const bundle = JSON.parse(await readFile(file, 'utf8')) as unknown;
  const trusted = await trustedKeyFor(bundle, values.key, values.state ?? defaultStateFile());
  if (!trusted) {
    console.error(
      'NOT VERIFIED: nothing was checked, because no key is trusted. Give the ledger’s verifier key ' +
        '(from its operator, or `connect keys show` on its server) with --key, or pin it with ' +
        '`connect verify remote --url URL`. The key inside the receipt proves nothing: anyone can sign with their own.',
    );
    return 2;
  }
  const result = verifyReceipt(bundle, trusted.key, { replay: replayReceipt });
  for (const check of result.checks) {
    const mark = check.notMade ? 'SKIP' : check.ok ? 'ok  ' : 'FAIL';
    console.log(`${mark} ${check.name}${check.detail ? ` — ${check.detail}` : ''}`);
  }
  if (!result.valid) {
    const failed = result.checks.filter((check) => !check.ok && !check.notMade);
    console.log(`receipt does NOT verify: ${failed.map((check) => check.name).join('; ')}`);
    return 1;
  }
  const receipt = bundle as ReceiptBundle & { state: ReceiptState };
  console.log(`receipt verified against ${trusted.from}. It proves, as of ledger ${receipt.origin}:`);
  for (const { label, value } of describeReceipt(receipt.state, profileNames(receipt.profiles ?? []))) {
    console.log(`  ${`${label}:`.padEnd(14)}${value}`);
  }
  return 0;
}

/** The audit, streamed with progress; exits 1 naming the first bad entry. */
async function verifyLedger(): Promise<number> {
  const config = loadConfig(process.env);
  // Sealed bodies are opened to check them against their data hashes.
  const reader = await openLedgerReader(config);
  const { database, cipher } = reader;
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
      cipher,
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
    await reader.close();
  }
}
