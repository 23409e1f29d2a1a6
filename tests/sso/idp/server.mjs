// A real OpenID provider for the single sign-on tests: npm `oidc-provider` (a certified implementation) with its
// development login pages (any password is accepted; the login names the account). Started on 127.0.0.1 by
// tests/sso/conftest.py with one JSON argument:
//
//   {port, accessTokenTTL, audience, clients: [{client_id, redirect_uris, post_logout_redirect_uris, ...}],
//    users: {login: [group, ...]}, expiringClient, jwks: [private JWK, ...]}
//
// - Access tokens are JWTs (RFC 9068, `typ: at+jwt`) for the resource `audience` (resource indicators), with
//   the account's `groups` claim (and the same list under `realm_access.roles`, Keycloak's shape).
// - Public clients (the console) get refresh tokens without `offline_access` (as Keycloak does by default),
//   so the console renews with the refresh token grant; consent is implied (no consent page).
// - Confidential clients may use client_credentials (tokens with the client id as subject). The token
//   lifetime of `expiringClient` is 1 s, for the expired-token tests.
// - Signs with the keys it is given (the tests give two providers the same key, so only `iss` tells them apart).
// - Prints `READY <issuer>` on stdout once listening.
import Provider from "oidc-provider";

const config = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${config.port}`;
const users = config.users;

const provider = new Provider(issuer, {
  clients: config.clients,
  async findAccount(_ctx, id) {
    if (!Object.hasOwn(users, id)) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, name: id, groups: users[id] }) };
  },
  claims: { openid: ["sub"], profile: ["name"], groups: ["groups"] },
  scopes: ["openid", "profile", "email", "groups", "offline_access"],
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => config.audience,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource, client) => {
        if (resource !== config.audience && resource !== "urn:other:api") throw new Error(`unknown resource ${resource}`);
        const ttl = client.clientId === config.expiringClient ? 1 : config.accessTokenTTL;
        return { scope: "openid profile groups", audience: resource, accessTokenTTL: ttl, accessTokenFormat: "jwt", jwt: { sign: { alg: "RS256" } } };
      },
    },
  },
  async extraTokenClaims(_ctx, token) {
    if (!token.accountId || !Object.hasOwn(users, token.accountId)) return undefined;
    const groups = users[token.accountId];
    return { groups, realm_access: { roles: groups } };
  },
  async issueRefreshToken(_ctx, client) {
    return client.grantTypeAllowed("refresh_token");
  },
  // Consent is implied: the grant holds whatever the client asked for.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid profile email groups offline_access");
    grant.addResourceScope(config.audience, "openid profile groups");
    grant.addResourceScope("urn:other:api", "openid profile groups");
    await grant.save();
    return grant;
  },
  pkce: { required: () => true },
  ttl: {
    AccessToken: config.accessTokenTTL,
    ClientCredentials: (_ctx, _token, client) => (client.clientId === config.expiringClient ? 1 : config.accessTokenTTL), IdToken: 3600, RefreshToken: 3600, Session: 3600, Grant: 3600, Interaction: 600 },
  cookies: { keys: ["hitl-test-idp-cookie-key-not-a-secret"] },
  jwks: { keys: config.jwks },
  rotateRefreshToken: true,
});
provider.proxy = false;
provider.on("server_error", (_ctx, error) => console.error("server_error", error));

provider.listen(config.port, "127.0.0.1", () => {
  console.log(`READY ${issuer}`);
});
