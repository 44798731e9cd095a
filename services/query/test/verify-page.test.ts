// The /verify page in a real browser: Debian's chromium driven by playwright-core.
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));
if (!CHROMIUM) console.warn('no chromium here (apt-get install chromium): the verifier page test is skipped');

describe.skipIf(!CHROMIUM)('the /verify page', () => {
  let s: Stack;
  let url: string;
  let browser: Browser;
  let receipt: { entries: { data: { title?: string } | null }[] } & Record<string, unknown>;

  beforeAll(async () => {
    s = await testStack();
    url = await s.app.listen({ port: 0, host: '127.0.0.1' });
    const ana: Account = await signUp(s.app, 'Ana');
    const created = await s.app.inject({
      method: 'POST',
      url: '/v1/commitments',
      payload: { type: 'personal', title: 'Feed the cat' },
      headers: ana.auth,
    });
    const { commitmentId, events } = created.json();
    await s.app.inject({
      method: 'POST',
      url: `/v1/commitments/${commitmentId}/update`,
      payload: { terms: 'Twice a day' },
      headers: ana.auth,
    });
    const response = await s.app.inject({
      method: 'GET',
      url: `/v1/commitments/${commitmentId}/receipt`,
      headers: { ...ana.auth, 'connect-min-index': String(events[0].index + 1) },
    });
    receipt = response.json();
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
      history: await page.$$eval('#history tr', (rows) => rows.map((row) => row.textContent ?? '')),
      requests,
    };
    await page.close();
    return result;
  }

  it('verifies a good receipt in the browser, with no request beyond the page itself', async () => {
    const result = await check(receipt, s.query.verifierKey);
    expect(result.verdict).toMatch(/^Receipt verified against the key you gave/);
    expect(result.failed).toEqual([]);
    expect(result.passed).toBeGreaterThan(3);
    expect(result.history).toHaveLength(2);
    expect(result.history[0]).toContain('CommitmentDrafted');
    expect(result.requests).toEqual(['/verify', '/verify/app.js']);
  });

  it('names what fails in a doctored receipt', async () => {
    const doctored = structuredClone(receipt);
    const first = doctored.entries[0];
    if (first?.data) first.data.title = 'Feed the dog';
    const result = await check(doctored, s.query.verifierKey);
    expect(result.verdict).toBe('This receipt does NOT verify.');
    expect(result.failed.join('\n')).toMatch(/dataHash/i);
  });

  it('refuses a receipt signed by another key than the one pinned', async () => {
    const result = await check(
      receipt,
      'other.example/ledger+00000000+AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=',
    );
    expect(result.verdict).toMatch(/does NOT verify|not valid/);
  });
});
