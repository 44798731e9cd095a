/// <reference lib="dom" />
// The verifier page's script: checks a receipt bundle in the browser with libs/crypto, the same
// code the CLI and server use, and replays its entries with the domain's rules (bundled in). It
// makes no network request (the page's CSP forbids them).
import {
  openStreamHead,
  parseVerifierKey,
  type ReceiptBundle,
  type VerifierKey,
  verifyReceipt,
} from '@connect/crypto';
import { describeReceipt, profileNames, type ReceiptState, replayReceipt } from '../receipt-state.ts';

interface BundleEntry {
  index: number;
  type: string;
  recordedAt: string;
  actor: string | null;
  redacted?: boolean;
}

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function text(tag: string, content: string, className?: string): HTMLElement {
  const node = document.createElement(tag);
  node.textContent = content;
  if (className) node.className = className;
  return node;
}

function say(message: string, ok: boolean): void {
  const result = element<HTMLElement>('result');
  result.textContent = message;
  result.className = ok ? 'ok' : 'bad';
}

/** What was proven, in words: the commitment as its events replay, and where that is recorded. */
function showProven(
  receipt: ReceiptBundle & { state: ReceiptState },
  names: Map<string, string>,
  trusted: VerifierKey,
): void {
  const head = openStreamHead(receipt.streamHead, [trusted]);
  element<HTMLElement>('proven-intro').textContent =
    `Ledger ${receipt.origin} signed that its first ${head.treeSize} entries include these ` +
    `${receipt.entries.length} events, and that they are every event of this commitment up to then ` +
    `(the latest is entry ${head.index}). Replayed with Connect's rules, they give the commitment below; ` +
    'parties are named as they registered in the ledger.';
  const summary = element<HTMLDListElement>('summary');
  for (const { label, value } of describeReceipt(receipt.state, names)) {
    summary.append(text('dt', label), text('dd', value));
  }
  element<HTMLElement>('proven').hidden = false;
}

function verify(): void {
  const checks = element<HTMLUListElement>('checks');
  const history = element<HTMLTableSectionElement>('history');
  checks.replaceChildren();
  history.replaceChildren();
  element<HTMLDListElement>('summary').replaceChildren();
  element<HTMLElement>('proven').hidden = true;
  let bundle: unknown;
  try {
    bundle = JSON.parse(element<HTMLTextAreaElement>('bundle').value);
  } catch {
    say('This is not JSON: paste or drop the receipt file as it was downloaded.', false);
    return;
  }
  const keyText = element<HTMLInputElement>('key').value.trim();
  if (!keyText) {
    say(
      'Nothing was verified: enter the verifier key of the ledger you trust. The key inside a receipt proves nothing on its own: anyone can sign with a key of their own.',
      false,
    );
    return;
  }
  let trusted: VerifierKey;
  try {
    trusted = parseVerifierKey(keyText);
  } catch (error) {
    say(`The verifier key is not valid: ${(error as Error).message}`, false);
    return;
  }
  const outcome = verifyReceipt(bundle, trusted, { replay: replayReceipt });
  for (const check of outcome.checks) {
    const mark = check.notMade ? '–' : check.ok ? '✓' : '✗';
    const item = text('li', `${mark} ${check.name}${check.detail ? ` — ${check.detail}` : ''}`);
    item.className = check.notMade ? 'skip' : check.ok ? 'ok' : 'bad';
    checks.append(item);
  }
  const receipt = bundle as ReceiptBundle & { state: ReceiptState };
  const names = outcome.valid ? profileNames(receipt.profiles ?? []) : new Map<string, string>();
  if (outcome.valid) {
    say('Receipt verified against the key you gave.', true);
    showProven(receipt, names, trusted);
  } else {
    const failed = outcome.checks.filter((check) => !check.ok && !check.notMade).map((check) => check.name);
    say(`This receipt does NOT verify. Failed: ${failed.join('; ')}.`, false);
  }
  const entries = ((bundle as { entries?: BundleEntry[] } | null)?.entries ?? []) as BundleEntry[];
  if (!Array.isArray(entries)) return;
  for (const entry of entries) {
    const row = document.createElement('tr');
    row.append(
      text('td', String(entry?.index)),
      text('td', String(entry?.recordedAt)),
      text('td', entry?.redacted ? `${entry.type} (redacted)` : String(entry?.type)),
      text('td', entry?.actor ? (names.get(entry.actor) ?? entry.actor) : 'Connect'),
    );
    history.append(row);
  }
}

function load(file: File): void {
  void file.text().then((content) => {
    element<HTMLTextAreaElement>('bundle').value = content;
    verify();
  });
}

element<HTMLButtonElement>('verify').addEventListener('click', verify);
element<HTMLInputElement>('file').addEventListener('change', (event) => {
  const file = (event.target as HTMLInputElement).files?.[0];
  if (file) load(file);
});
document.addEventListener('dragover', (event) => event.preventDefault());
document.addEventListener('drop', (event) => {
  event.preventDefault();
  const file = event.dataTransfer?.files[0];
  if (file) load(file);
});
