// What browsers get told on every response: security headers (helmet), and CORS for the web apps on
// the origins CONNECT_CORS_ORIGINS names (none → no CORS headers at all).
import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';
import helmet from 'helmet';

/** Request headers a browser on another origin may send (beyond the CORS-safelisted ones). */
export const CORS_REQUEST_HEADERS = [
  'Authorization',
  'Content-Type',
  'Idempotency-Key',
  'If-Match',
  'If-None-Match',
  'Connect-Min-Index',
  'X-Request-Id',
  'traceparent',
  'tracestate',
];

/** Response headers of the HTTP contract a browser script on another origin may read. */
export const CORS_EXPOSED_HEADERS = [
  'Connect-Index',
  'Connect-Tree-Size',
  'Connect-Document-Version',
  'Content-Disposition',
  'ETag',
  'Idempotency-Replayed',
  'Location',
  'Retry-After',
  'WWW-Authenticate',
  'X-Request-Id',
  'traceresponse',
];

/**
 * The policy of every response that sets none of its own: the pages served here (Swagger UI at
 * /docs, GraphiQL, problem pages) load scripts, styles, fonts and data only from this origin, and no
 * site may frame them. A page with stricter needs sets its own (GET /verify, document downloads).
 */
const CONTENT_SECURITY_POLICY = {
  'default-src': ["'self'"],
  'base-uri': ["'none'"],
  'object-src': ["'none'"],
  'frame-ancestors': ["'none'"],
  'form-action': ["'self'"],
  'script-src': ["'self'"],
  'script-src-attr': ["'none'"],
  'style-src': ["'self'", "'unsafe-inline'"],
  'img-src': ["'self'", 'data:'],
  'font-src': ["'self'", 'data:'],
  'connect-src': ["'self'"],
};

/**
 * Registers the security headers on every response, and CORS when some origin is allowed. Helmet's
 * middleware is built once here: the Fastify plugin built it anew for each request (its policy
 * parsed every time, a visible cost per request).
 */
export function registerSecurity(app: FastifyInstance, corsOrigins: readonly string[] = []): void {
  const origins = new Set(corsOrigins);
  const securityHeaders = helmet({
    contentSecurityPolicy: { useDefaults: false, directives: CONTENT_SECURITY_POLICY },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    // Browsers on the allowed origins read the answers; without CORS only this origin does.
    crossOriginResourcePolicy: { policy: origins.size > 0 ? 'cross-origin' : 'same-origin' },
  });
  app.addHook('onRequest', (request, reply, done) => securityHeaders(request.raw, reply.raw, () => done()));
  if (origins.size === 0) return;
  app.register(cors, {
    // A refused origin (or a request without one) gets no CORS headers, and its preflight a 404.
    origin: (origin, callback) => callback(null, origin !== undefined && origins.has(origin)),
    methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: CORS_REQUEST_HEADERS,
    exposedHeaders: CORS_EXPOSED_HEADERS,
    // Bearer tokens, not cookies: no credentialed requests.
    credentials: false,
    maxAge: 600,
  });
}
