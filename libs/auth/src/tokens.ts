// Short-lived ES256 access tokens (jose) carrying the session id; JWKS publishes the public key.
// A token carries no roles: they come from the database with the session check (session-gate.ts),
// so a grant or a revocation applies to tokens already issued. (Older tokens carry an `adm` claim,
// which is ignored.)
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { readOrCreateSecretFile } from '@connect/db';
import { exportJWK, generateKeyPair, importJWK, type JWK, jwtVerify, SignJWT } from 'jose';

export const ACCESS_TOKEN_SECONDS = 15 * 60;
const ISSUER = 'connect';
const AUDIENCE = 'connect-api';
const VERIFIED_CACHE_SIZE = 10_000;

/** What an access token says: whose session it is. */
export interface TokenClaims {
  userId: string;
  sessionId: string;
}

export interface TokenIssuer {
  issueAccessToken(claims: TokenClaims): Promise<string>;
  /** The claims of a valid, unexpired token; throws otherwise. */
  verifyAccessToken(token: string): Promise<TokenClaims>;
  jwks: { keys: JWK[] };
}

export async function loadTokenIssuer(dataDir: string): Promise<TokenIssuer> {
  const text = await readOrCreateSecretFile(path.join(dataDir, 'auth-key.json'), async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    return JSON.stringify(await exportJWK(privateKey));
  });
  const privateJwk = JSON.parse(text) as JWK;
  const kid = createHash('sha256').update(`${privateJwk.x}.${privateJwk.y}`).digest('base64url').slice(0, 16);
  const { d: _private, ...publicJwk } = privateJwk;
  const privateKey = await importJWK(privateJwk, 'ES256');
  const publicKey = await importJWK(publicJwk, 'ES256');
  const verified = new Map<string, { claims: TokenClaims; expiresAt: number }>();
  return {
    issueAccessToken: ({ userId, sessionId }) =>
      new SignJWT({ sid: sessionId })
        .setProtectedHeader({ alg: 'ES256', kid })
        .setSubject(userId)
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setJti(randomBytes(8).toString('hex'))
        .setExpirationTime(`${ACCESS_TOKEN_SECONDS}s`)
        .sign(privateKey),
    verifyAccessToken: async (token) => {
      const cached = verified.get(token);
      if (cached && cached.expiresAt > Date.now()) return cached.claims;
      const { payload } = await jwtVerify(token, publicKey, {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ['ES256'],
      });
      if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string')
        throw new Error('malformed token');
      const claims = { userId: payload.sub, sessionId: payload.sid };
      // A signature checked once stays checked until the token expires; the session is still
      // looked up on every request, so a logout takes effect at once.
      if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value as string);
      verified.set(token, { claims, expiresAt: (payload.exp ?? 0) * 1000 });
      return claims;
    },
    jwks: { keys: [{ ...publicJwk, kid, alg: 'ES256', use: 'sig' }] },
  };
}
