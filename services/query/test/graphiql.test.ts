// GraphiQL works offline: the page and everything it loads come from this service (the installed
// graphiql, react and react-dom packages), and it offers an Authorization header for the token.
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pageWithItsAssets } from '../../../test/support/assets.ts';
import { type Stack, testStack } from '../../../test/support/stack.ts';
import { signUp } from '../../command/test/support.ts';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));

let s: Stack;
beforeAll(async () => {
  s = await testStack();
});
afterAll(() => s.close());

describe('/graphiql', () => {
  it('is a page whose scripts and styles all come from this origin and load', async () => {
    const { assets } = await pageWithItsAssets(s.app, '/graphiql');
    expect(assets.map((asset) => asset.path)).toEqual([
      '/graphiql/graphiql.min.css',
      '/graphiql/react.production.min.js',
      '/graphiql/react-dom.production.min.js',
      '/graphiql/graphiql.min.js',
      '/graphiql/setup.js',
    ]);
    const setup = assets.find((asset) => asset.path === '/graphiql/setup.js')?.body ?? '';
    expect(setup).not.toMatch(/https?:\/\//);
    expect(setup).toContain('"Authorization": "Bearer "');
    const css = assets.find((asset) => asset.path === '/graphiql/graphiql.min.css')?.body ?? '';
    expect(css).not.toMatch(/url\(\s*['"]?(https?:)?\/\//);
  });

  it.skipIf(!CHROMIUM)(
    'runs a query in a browser with the token pasted into its Authorization header, reaching nothing else',
    async () => {
      const url = await s.app.listen({ port: 0, host: '127.0.0.1' });
      const ana = await signUp(s.app, 'Graphiql');
      const browser: Browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--no-sandbox', '--disable-gpu'],
      });
      try {
        const page = await browser.newPage();
        const elsewhere: string[] = [];
        const authorizations: string[] = [];
        const errors: string[] = [];
        page.on('pageerror', (error) => errors.push(error.message));
        await page.route('**/*', (route) => {
          const request = route.request();
          if (!request.url().startsWith(url)) {
            elsewhere.push(request.url());
            return route.abort();
          }
          if (new URL(request.url()).pathname === '/graphql') {
            authorizations.push(request.headers().authorization ?? '');
          }
          return route.continue();
        });
        await page.goto(`${url}/graphiql`);
        await page.waitForSelector('.graphiql-container', { timeout: 20_000 });
        await page.evaluate((token) => {
          // The headers editor is the CodeMirror instance holding the prefilled `Bearer `.
          const editors = Array.from(document.querySelectorAll('.graphiql-editor-tool .CodeMirror')).map(
            (element) =>
              (element as unknown as { CodeMirror: { getValue(): string; setValue(value: string): void } })
                .CodeMirror,
          );
          const headers = editors.find((editor) => editor.getValue().includes('"Bearer "'));
          headers?.setValue(headers.getValue().replace('"Bearer "', `"Bearer ${token}"`));
        }, ana.token);
        await page.click('.graphiql-execute-button');
        await page.waitForFunction(
          () => document.querySelector('.graphiql-response')?.textContent?.includes('displayName'),
          undefined,
          { timeout: 20_000 },
        );
        expect(await page.textContent('.graphiql-response')).toContain('Graphiql');
        expect(authorizations).toContain(`Bearer ${ana.token}`);
        expect(elsewhere).toEqual([]);
        expect(errors).toEqual([]);
      } finally {
        await browser.close();
      }
    },
    60_000,
  );
});
