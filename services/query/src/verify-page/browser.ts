/// <reference lib="dom" />
// The verifier page's script: checks a receipt bundle in the browser with libs/crypto, the same
// code the CLI and server use. It makes no network request (the page's CSP forbids them).
import { parseVerifierKey, verifyReceipt } from '@connect/crypto';

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

function verify(): void {
  const result = element<HTMLElement>('result');
  const checks = element<HTMLUListElement>('checks');
  const history = element<HTMLTableSectionElement>('history');
  checks.replaceChildren();
  history.replaceChildren();
  let bundle: unknown;
  try {
    bundle = JSON.parse(element<HTMLTextAreaElement>('bundle').value);
  } catch {
    result.textContent = 'This is not JSON: paste or drop the receipt file as it was downloaded.';
    result.className = 'bad';
    return;
  }
  const keyText = element<HTMLInputElement>('key').value.trim();
  let trusted: ReturnType<typeof parseVerifierKey> | undefined;
  if (keyText) {
    try {
      trusted = parseVerifierKey(keyText);
    } catch (error) {
      result.textContent = `The verifier key is not valid: ${(error as Error).message}`;
      result.className = 'bad';
      return;
    }
  }
  const outcome = verifyReceipt(bundle, trusted);
  for (const check of outcome.checks) {
    const item = text(
      'li',
      `${check.ok ? '✓' : '✗'} ${check.name}${check.detail ? ` — ${check.detail}` : ''}`,
    );
    item.className = check.ok ? 'ok' : 'bad';
    checks.append(item);
  }
  result.textContent = outcome.valid
    ? `Receipt verified${trusted ? ' against the key you gave' : ' (against the key inside it: pin the ledger key to be sure)'}.`
    : 'This receipt does NOT verify.';
  result.className = outcome.valid ? 'ok' : 'bad';
  const entries = ((bundle as { entries?: BundleEntry[] }).entries ?? []) as BundleEntry[];
  for (const entry of entries) {
    const row = document.createElement('tr');
    row.append(
      text('td', String(entry.index)),
      text('td', entry.recordedAt),
      text('td', entry.redacted ? `${entry.type} (redacted)` : entry.type),
      text('td', entry.actor ?? 'Connect'),
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
