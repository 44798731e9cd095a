import { createServer } from '@connect/http';
import type { FastifyInstance } from 'fastify';

/** `METHOD /path/{param}` of every API route these plugins register (what an OpenAPI document must list). */
export async function registeredRoutes(register: (app: FastifyInstance) => void): Promise<string[]> {
  const routes: string[] = [];
  const app = createServer({ logLevel: 'silent', checkReady: async () => undefined });
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (method !== 'HEAD' && (route.url.startsWith('/v1/') || route.url.startsWith('/.well-known/'))) {
        routes.push(`${method} ${route.url.replace(/:(\w+)/g, '{$1}')}`);
      }
    }
  });
  register(app);
  await app.ready();
  await app.close();
  return routes.sort();
}

/** `METHOD /path` of every operation an OpenAPI document lists. */
export function documentedRoutes(document: { paths: Record<string, Record<string, unknown>> }): string[] {
  return Object.entries(document.paths)
    .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`))
    .sort();
}
