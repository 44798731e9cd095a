import { formatVerifierKey } from '@connect/crypto';
import { loadConfig } from '@connect/db';
import { loadLedgerKey } from '@connect/ledger';

/** Prints the verifier key: the public half, safe to publish; clients pin it. */
export async function keysShow(): Promise<number> {
  const config = loadConfig(process.env);
  const key = await loadLedgerKey({
    origin: config.ledgerOrigin,
    dataDir: config.dataDir,
    seed: config.ledgerKey,
  });
  console.log(formatVerifierKey(key));
  return 0;
}
