// The /verify page in a real browser: Debian's chromium driven by playwright-core.
import { existsSync } from 'node:fs';
import type { ReceiptBundle } from '@connect/crypto';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { CHECKS, type RefusedCase, refusedReceipts, type Served, servedReceipt } from './receipt-cases.ts';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));
if (!CHROMIUM) console.warn('no chromium here (apt-get install chromium): the verifier page test is skipped');

describe.skipIf(!CHROMIUM)('the /verify page', () => {
  let s: Stack;
  let url: string;
  let browser: Browser;
  let served: Served;
  let receipt: ReceiptBundle & { state: Record<string, unknown> };

  beforeAll(async () => {
    s = await testStack();
    url = await s.app.listen({ port: 0, host: '127.0.0.1' });
    served = await servedReceipt(s);
    receipt = served.receipt;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  });
  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  async function check(bundle: unknown, key?: string) {
    const page = await browser.newPage();
    const requests: string[] = [];
    page.on('request', (request) => requests.push(new URL(request.url()).pathname));
    await page.goto(`${url}/verify`);
    await page.fill('#bundle', JSON.stringify(bundle));
    if (key) await page.fill('#key', key);
    await page.click('#verify');
    await page.waitForFunction(() => document.getElementById('result')?.textContent !== '');
    const result = {
      verdict: (await page.textContent('#result')) ?? '',
      failed: await page.$$eval('#checks li.bad', (items) => items.map((item) => item.textContent ?? '')),
      passed: await page.$$eval('#checks li.ok', (items) => items.length),
      proven: await page.isVisible('#proven'),
      intro: (await page.textContent('#proven-intro')) ?? '',
      summary: await page.$$eval('#summary dt', (terms) =>
        terms.map((term) => `${term.textContent}: ${term.nextElementSibling?.textContent}`),
      ),
      history: await page.$$eval('#history tr', (rows) => rows.map((row) => row.textContent ?? '')),
      requests,
    };
    await page.close();
    return result;
  }

  it('verifies a good receipt in the browser and says what it proves in words, with no request beyond the page', async () => {
    const result = await check(receipt, s.query.verifierKey);
    expect(result.verdict).toMatch(/^Receipt verified against the key you gave/);
    expect(result.failed).toEqual([]);
    expect(result.passed).toBeGreaterThan(20);
    expect(result.proven).toBe(true);
    expect(result.intro).toMatch(/every event of this commitment/);
    expect(result.summary).toEqual(
      expect.arrayContaining([
        'Title: Loan for the van',
        'Kind: financial',
        'Status: active (every party accepted)',
        'Amount: €1,250.00',
        'Due: 2030-01-01 00:00 UTC',
        'Creator: Ana (accepted)',
        'Participant: Ben (accepted)',
      ]),
    );
    expect(result.summary.some((line) => /^Created: \d{4}-\d\d-\d\d \d\d:\d\d UTC$/.test(line))).toBe(true);
    expect(result.history).toHaveLength(5);
    expect(result.history[0]).toContain('CommitmentDrafted');
    expect(result.history[0]).toContain('Ana');
    expect(result.requests).toEqual(['/verify', '/verify/app.js']);
  });

  it('names what fails in a doctored entry, and shows nothing as proven', async () => {
    const doctored = structuredClone(receipt);
    const first = doctored.entries[0] as unknown as { data: { title: string } };
    first.data.title = 'Loan for the car';
    const result = await check(doctored, s.query.verifierKey);
    expect(result.verdict).toMatch(/^This receipt does NOT verify/);
    expect(result.failed.join('\n')).toMatch(/dataHash/i);
    expect(result.proven).toBe(false);
    expect(result.summary).toEqual([]);
  });

  it('refuses cut-off entries, an edited state, and stream heads of another stream, tree or key', async () => {
    const refused = refusedReceipts(receipt, s.command.ledger.key);
    for (const name of Object.keys(CHECKS) as RefusedCase[]) {
      const result = await check(refused[name], s.query.verifierKey);
      expect(result.verdict, name).toMatch(/^This receipt does NOT verify/);
      expect(result.verdict, name).toContain(CHECKS[name]);
      expect(
        result.failed.some((line) => line.includes(CHECKS[name])),
        name,
      ).toBe(true);
      expect(result.proven, name).toBe(false);
    }
  });

  it('verifies nothing without a trusted key, even the receipt’s own', async () => {
    const result = await check(receipt);
    expect(result.verdict).toMatch(/^Nothing was verified/);
    expect(result.passed).toBe(0);
    expect(result.proven).toBe(false);
  });

  it('refuses a receipt signed by another key than the one pinned', async () => {
    const result = await check(
      receipt,
      'other.example/ledger+00000000+AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=',
    );
    expect(result.verdict).toMatch(/does NOT verify|not valid/);
  });
});
