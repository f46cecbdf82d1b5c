// A certified OpenID Provider (the npm package oidc-provider) for the sign-in tests.
//   node provider.mjs CONFIG.json    -> prints "listening PORT" once it accepts connections
// CONFIG: {"port": 0, "client": {...client metadata...}, "accounts": {"id": {claims}}}
// Its development login page accepts any password for a known account id; consent is one click.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;

const provider = new Provider(issuer, {
  clients: [config.client],
  async findAccount(ctx, id) {
    const claims = config.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
  claims: {
    openid: ['sub'],
    email: ['email'],
    profile: ['given_name', 'family_name', 'preferred_username'],
    carttrack: ['roles', 'center'],
  },
  scopes: ['openid', 'email', 'profile', 'carttrack'],
  features: {
    devInteractions: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  pkce: { required: () => false },
  cookies: { keys: ['carttrack-test-only-cookie-key'] },
  // The relying party (CARTtrack's test server) is on 127.0.0.1, which the provider's SSRF
  // guard refuses for back-channel requests: this test-only provider lets loopback through.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
});

provider.on('backchannel.error', (ctx, err) => console.error(`backchannel.error ${err} ${err.cause}`));
provider.on('backchannel.success', () => console.error('backchannel.success'));

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
