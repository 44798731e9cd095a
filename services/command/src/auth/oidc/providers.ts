// The OpenID providers configured by CONNECT_OIDC_<NAME>_*: each is discovered at its first use
// (its discovery document and keys), and the result is kept; a failed discovery is tried again at
// the next use.
import type { OidcProviderConfig } from '@connect/db';
import * as client from 'openid-client';

export interface OidcProvider {
  /** The lower-cased NAME, as it appears in URLs. */
  name: string;
  issuer: string;
  /** Where the provider sends the browser back: registered with the provider as the redirect URI. */
  redirectUri: string;
  /** The provider's discovered configuration, with this service as its client. */
  configuration(): Promise<client.Configuration>;
}

export interface OidcProviders {
  find(name: string): OidcProvider | undefined;
}

const isLoopback = (url: URL) =>
  url.hostname === 'localhost' || url.hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(url.hostname);

export function oidcProviders(configs: readonly OidcProviderConfig[], publicApiUrl: string): OidcProviders {
  const providers = new Map(
    configs.map((config) => [config.name, oidcProvider(config, publicApiUrl)] as const),
  );
  return { find: (name) => providers.get(name) };
}

function oidcProvider(config: OidcProviderConfig, publicApiUrl: string): OidcProvider {
  let discovered: Promise<client.Configuration> | undefined;
  const issuer = new URL(config.issuer);
  async function discover(): Promise<client.Configuration> {
    const configuration = await client.discovery(
      issuer,
      config.clientId,
      config.clientSecret,
      client.ClientSecretBasic(config.clientSecret),
      // Plain http is only ever allowed for a loopback issuer (config.ts refuses it otherwise).
      issuer.protocol === 'http:' && isLoopback(issuer) ? { execute: [client.allowInsecureRequests] } : {},
    );
    // The ID token's signature is checked against the provider's keys, not only trusted because it
    // came over TLS from the token endpoint.
    client.enableNonRepudiationChecks(configuration);
    return configuration;
  }
  return {
    name: config.name,
    issuer: config.issuer,
    redirectUri: `${publicApiUrl}/v1/auth/oidc/${config.name}/callback`,
    configuration() {
      discovered ??= discover().catch((error: unknown) => {
        discovered = undefined;
        throw error;
      });
      return discovered;
    },
  };
}
