// GET /verify: a page that verifies receipt bundles in the browser with libs/crypto, bundled once
// on first request. Its content security policy forbids any network request from the page.
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { FastifyInstance } from 'fastify';
import { VERIFY_PAGE } from './page.ts';

const ENTRY = fileURLToPath(new URL('./browser.ts', import.meta.url));
const POLICY =
  "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'none'; form-action 'none'";

let bundled: Promise<string> | undefined;

function script(): Promise<string> {
  bundled ??= build({
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    logLevel: 'silent',
  }).then((result) => result.outputFiles[0]?.text ?? '');
  bundled.catch(() => {
    bundled = undefined;
  });
  return bundled;
}

export async function verifyPageRoutes(app: FastifyInstance): Promise<void> {
  app.get('/verify', async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', POLICY).send(VERIFY_PAGE),
  );
  app.get('/verify/app.js', async (_request, reply) =>
    reply
      .type('text/javascript; charset=utf-8')
      .header('cache-control', 'public, max-age=300')
      .send(await script()),
  );
}
