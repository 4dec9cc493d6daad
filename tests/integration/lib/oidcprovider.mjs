// A real OpenID provider for the tests: the npm package oidc-provider with one registered
// client (tests/integration/run and tests/e2e/run give the auth app the same settings: client
// id and secret, the redirect URI), its development login and consent pages, and accounts
// whose claims the test chooses: accounts.set(login, {email, email_verified, ...}); a login
// (the sub) the map does not hold has no claims but its sub.
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

export const OIDC_CLIENT = { id: 'townhall-test', secret: 'townhall-test-secret-0123456789' };

// Listens on 127.0.0.1:port; resolves {issuer, accounts, close()}.
export async function startProvider({ port, redirect }) {
  const issuer = `http://127.0.0.1:${port}`;
  const accounts = new Map();
  const provider = new Provider(issuer, {
    clients: [{
      client_id: OIDC_CLIENT.id,
      client_secret: OIDC_CLIENT.secret,
      redirect_uris: [redirect],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
    // the claims of the scopes in the ID token itself (Townhall reads no userinfo)
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
    async findAccount(ctx, sub) {
      const a = accounts.get(sub) || {};
      return { accountId: sub, claims: async () => ({ sub, ...a }) };
    },
  });
  const server = http.createServer(provider.callback());
  await new Promise((res) => server.listen(port, '127.0.0.1', res));
  return {
    issuer,
    accounts,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}
