import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';

const CONTENT_TYPES: Record<string, RegExp> = {
  js: /^(application|text)\/javascript/,
  css: /^text\/css/,
  png: /^image\/png/,
  svg: /^image\/svg\+xml/,
};

/**
 * Loads an HTML page and every script, stylesheet and icon it references: all must be on this
 * origin (a page that works offline) and load with the content type their extension promises.
 * Returns the page and the paths it loaded.
 */
export async function pageWithItsAssets(
  app: FastifyInstance,
  url: string,
): Promise<{ html: string; assets: { path: string; body: string }[] }> {
  const page = await app.inject({ method: 'GET', url });
  expect(page.statusCode, url).toBe(200);
  expect(page.headers['content-type']).toMatch(/^text\/html/);
  const html = page.body;
  expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//i);
  const references = [...html.matchAll(/<(?:script|link)\b[^>]*?\b(?:src|href)=["']([^"']+)["']/gi)].map(
    ([, reference]) => reference as string,
  );
  expect(references.length).toBeGreaterThan(0);
  const assets = [];
  for (const reference of references) {
    const resolved = new URL(reference, `http://localhost${url}`);
    expect(resolved.origin, reference).toBe('http://localhost');
    const response = await app.inject({ method: 'GET', url: resolved.pathname });
    expect(response.statusCode, resolved.pathname).toBe(200);
    const extension = resolved.pathname.split('.').at(-1) ?? '';
    expect(CONTENT_TYPES[extension], `an asset of an unexpected kind: ${reference}`).toBeDefined();
    expect(response.headers['content-type'], resolved.pathname).toMatch(CONTENT_TYPES[extension] as RegExp);
    expect(response.body.length, resolved.pathname).toBeGreaterThan(0);
    assets.push({ path: resolved.pathname, body: response.body });
  }
  return { html, assets };
}
