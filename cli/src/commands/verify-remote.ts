// connect verify remote --url URL: trust on first use, then hold the server to it. The first run
// pins the ledger's key; every run checks that the new checkpoint is signed by that key and that
// the tree it commits to extends the last one verified, so a server that forks or rolls back its
// ledger is caught.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openCheckpoint, parseVerifierKey, verifyCheckpointConsistency } from '@connect/crypto';

interface Pinned {
  verifierKey: string;
  checkpoint: string;
}

export function defaultStateFile(): string {
  const base = process.env.XDG_CONFIG_HOME ?? path.join(os.homedir(), '.config');
  return path.join(base, 'connect', 'verified-checkpoints.json');
}

async function get(url: string): Promise<Response> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return response;
}

export async function verifyRemote(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { url: { type: 'string' }, state: { type: 'string' } } });
  if (!values.url) throw new Error('usage: connect verify remote --url URL [--state FILE]');
  const base = values.url.replace(/\/+$/, '');
  const stateFile = values.state ?? defaultStateFile();
  const state = JSON.parse(await readFile(stateFile, 'utf8').catch(() => '{}')) as Record<string, Pinned>;
  const pinned = state[base];

  const served = (await (await get(`${base}/v1/ledger/key`)).json()) as { verifierKey: string };
  if (pinned && pinned.verifierKey !== served.verifierKey) {
    console.error(`FAIL the server's key changed: pinned ${pinned.verifierKey}, now ${served.verifierKey}`);
    return 1;
  }
  const key = parseVerifierKey(pinned?.verifierKey ?? served.verifierKey);
  if (!pinned) console.log(`first run for ${base}: pinned the ledger key ${served.verifierKey}`);

  const note = await (await get(`${base}/v1/ledger/checkpoint`)).text();
  let latest: ReturnType<typeof openCheckpoint>;
  try {
    latest = openCheckpoint(note, [key]);
  } catch (error) {
    console.error(`FAIL the checkpoint does not verify under the pinned key: ${(error as Error).message}`);
    return 1;
  }
  if (pinned) {
    const previous = openCheckpoint(pinned.checkpoint, [key]);
    if (latest.treeSize < previous.treeSize) {
      console.error(`FAIL the ledger rolled back from ${previous.treeSize} to ${latest.treeSize} entries`);
      return 1;
    }
    const proof = (await (
      await get(`${base}/v1/ledger/proofs/consistency?from=${previous.treeSize}&to=${latest.treeSize}`)
    ).json()) as { from: number; to: number; hashes: string[] };
    const result = verifyCheckpointConsistency({ from: pinned.checkpoint, to: note, proof }, key);
    if (!result.valid) {
      const failed = result.checks.filter((check) => !check.ok);
      console.error(`FAIL ${failed.map((check) => `${check.name}: ${check.detail ?? ''}`).join('; ')}`);
      return 1;
    }
    console.log(
      latest.treeSize === previous.treeSize
        ? `ok: ${latest.origin} unchanged at ${latest.treeSize} entries`
        : `ok: ${latest.origin} grew from ${previous.treeSize} to ${latest.treeSize} entries without rewriting any`,
    );
  } else {
    console.log(`ok: ${latest.origin} at ${latest.treeSize} entries`);
  }
  await mkdir(path.dirname(stateFile), { recursive: true });
  await writeFile(
    stateFile,
    `${JSON.stringify({ ...state, [base]: { verifierKey: served.verifierKey, checkpoint: note } }, null, 2)}\n`,
  );
  return 0;
}
