// What a restored database needs before it serves: sessions ended (people sign in again with
// their passwords), read models rebuilt from the restored ledger, the audit, and the proof that
// the restored ledger extends the checkpoint the backup recorded.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fromBase64, openCheckpoint, parseVerifierKey, verifyConsistency } from '@connect/crypto';
import { assertMasterKeysHeld, type DatabaseHandle, loadConfig, migrate } from '@connect/db';
import { auditLedger, consistencyProof, latestCheckpoint, openBodyCipher, readHead } from '@connect/ledger';
import { PROJECTIONS, replayProjection } from '@connect/projector';
import type { BackupManifest } from './manifest.ts';

export interface RestoreReport {
  treeSize: number;
  sessionsRevoked: number;
  projections: { name: string; events: number }[];
  audit: { ok: true } | { ok: false; problem: string };
  /** The restored newest checkpoint against the backup's, by a consistency proof. */
  consistency: { ok: boolean; from: number; to: number; detail: string };
  missingDocuments: string[];
}

/** Ends every session and every unused emailed token or login code of the restored copy. */
export async function revokeSessions(database: DatabaseHandle): Promise<number> {
  const client = await database.pool.connect();
  try {
    await client.query('begin');
    const { rowCount } = await client.query(
      'update sessions set revoked_at = now() where revoked_at is null',
    );
    await client.query(
      'update account_tokens set expires_at = now() where used_at is null and expires_at > now()',
    );
    await client.query('delete from oidc_app_codes');
    await client.query('delete from oidc_logins');
    await client.query('commit');
    return rowCount ?? 0;
  } catch (error) {
    await client.query('rollback');
    throw error;
  } finally {
    client.release();
  }
}

export async function finishRestore(
  database: DatabaseHandle,
  dataDir: string,
  manifest: BackupManifest,
): Promise<RestoreReport> {
  await migrate(database.pool);
  const head = await readHead(database.db);
  if (!head) throw new Error('the restored database has no ledger');
  const key = parseVerifierKey(head.verifierKey);
  const sessionsRevoked = await revokeSessions(database);
  // The restored data directory's master key (or CONNECT_MASTER_KEY) opens the sealed bodies.
  const { keys, cipher } = await openBodyCipher(
    database.pool,
    { ...loadConfig(process.env), dataDir },
    { listen: false, create: false },
  );
  const projections: RestoreReport['projections'] = [];
  let audited: Awaited<ReturnType<typeof auditLedger>>;
  try {
    await assertMasterKeysHeld(database.pool, keys.masterKeys);
    for (const projection of PROJECTIONS) {
      const result = await replayProjection({ pool: database.pool, origin: head.origin, cipher }, projection);
      projections.push({ name: result.projection, events: result.events });
    }
    audited = await auditLedger(database.db, key, { cipher });
  } finally {
    await keys.close();
  }
  const audit: RestoreReport['audit'] = audited.ok
    ? { ok: true }
    : {
        ok: false,
        problem: `${audited.problem}${audited.index === null ? '' : ` (entry ${audited.index})`}`,
      };

  const latest = await latestCheckpoint(database.db);
  let consistency: RestoreReport['consistency'];
  if (!manifest.checkpoint || !latest) {
    consistency = { ok: true, from: 0, to: latest?.treeSize ?? 0, detail: 'the backup held no checkpoint' };
  } else {
    const before = openCheckpoint(manifest.checkpoint.note, [key]);
    const after = openCheckpoint(latest.note, [key]);
    const proof = await consistencyProof(database.pool, before.treeSize, after.treeSize).catch(
      () => undefined,
    );
    const ok =
      proof !== undefined &&
      verifyConsistency(
        { from: proof.from, to: proof.to, hashes: proof.hashes.map(fromBase64) },
        before.rootHash,
        after.rootHash,
      );
    consistency = {
      ok,
      from: before.treeSize,
      to: after.treeSize,
      detail: ok
        ? `the restored checkpoint (tree size ${after.treeSize}) extends the backup's (tree size ${before.treeSize}): consistency proof verified`
        : `the restored checkpoint (tree size ${after.treeSize}) does NOT extend the backup's (tree size ${before.treeSize})`,
    };
  }
  const { rows } = await database.pool.query<{ sha256: string }>(
    'select distinct sha256 from commitment_documents order by sha256',
  );
  const missingDocuments = rows
    .map((row) => row.sha256)
    .filter((sha256) => !existsSync(path.join(dataDir, 'documents', sha256.slice(0, 2), sha256)));
  return { treeSize: head.treeSize, sessionsRevoked, projections, audit, consistency, missingDocuments };
}
