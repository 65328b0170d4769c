// An independent OpenID provider (panva's oidc-provider) for the tests, on 127.0.0.1.
//
//   node server.mjs CONFIG.json
//
// It listens on a free port (or CONFIG.port), then prints one JSON line on stdout:
// {"issuer": "http://127.0.0.1:PORT"}. Everything a test needs to drive it runs over HTTP:
//   GET  /interaction/:uid           the login or consent page (plain HTML forms)
//   POST /interaction/:uid/login     login=<user id>
//   POST /interaction/:uid/confirm   approve what the consent page asked for
//   POST /interaction/:uid/abort     deny (the client gets error=access_denied)
//   GET  /_test/counters             how many logins, consent pages, consents, token answers
//   POST /_test/reset                set every counter back to zero
// CONFIG (every key optional; see tests/support/oidc.py for what the tests pass):
//   clients           client metadata as oidc-provider takes it (client_id, client_secret,
//                     token_endpoint_auth_method, jwks, grant_types, redirect_uris...)
//   ttl               {"AccessToken": s, "RefreshToken": s, "ClientCredentials": s, ...}
//   dpop              {"nonce": true} makes every DPoP proof carry a server nonce
//   resources         {"<resource URI>": {"scope": "a b", "ttl": s}}: JWT access tokens whose
//                     aud is the resource
//   default_resource  the resource a token gets when the client names none
//   rotate_refresh    true (default): every refresh answer carries a new refresh token and
//                     reusing an old one ends the whole grant
//   refresh_expires_field  add the refresh token's remaining life to the token answer
//                     under this name, as Keycloak (refresh_expires_in) or GitHub
//                     (refresh_token_expires_in) do
//   registration      true: dynamic client registration (RFC 7591) at /reg, open to anyone
//   auto_consent      true: the consent page approves itself (it is still counted)
//   native_consent    "always" (oidc-provider's default): a native client's every authorization
//                     shows the consent page; "remembered": only what was never granted does
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider, { errors, interactionPolicy } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2] ?? '/dev/stdin', 'utf8'));
const counters = { logins: 0, consent_pages: 0, consents: 0, aborts: 0, tokens: {}, errors: [] };

function resetCounters() {
  Object.assign(counters, { logins: 0, consent_pages: 0, consents: 0, aborts: 0, tokens: {}, errors: [] });
}

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return {
    keys: [
      { ...rsa, kid: 'rs256-test', alg: 'RS256', use: 'sig' },
      { ...ec, kid: 'es256-test', alg: 'ES256', use: 'sig' },
    ],
  };
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>`
    + `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

function loginPage(uid, clientId) {
  return page('Sign in', `<p>Sign in to continue to <b>${escapeHtml(clientId)}</b>.</p>`
    + `<form method="post" action="/interaction/${uid}/login">`
    + '<label>User <input name="login" autofocus></label>'
    + '<button type="submit">Sign in</button></form>');
}

function consentPage(uid, clientId, details) {
  const scopes = [...(details.missingOIDCScope ?? [])];
  for (const [resource, more] of Object.entries(details.missingResourceScopes ?? {})) {
    scopes.push(...more.map((s) => `${s} (${resource})`));
  }
  const items = scopes.map((s) => `<li>${escapeHtml(s)}</li>`).join('');
  return page('Authorize', `<p><b>${escapeHtml(clientId)}</b> asks for:</p><ul>${items}</ul>`
    + `<form method="post" action="/interaction/${uid}/confirm"><button type="submit">Allow</button></form>`
    + `<form method="post" action="/interaction/${uid}/abort"><button type="submit">Deny</button></form>`);
}

async function formBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function consentGrant(provider, interaction) {
  const { prompt: { details }, params, session: { accountId } } = interaction;
  const grant = interaction.grantId
    ? await provider.Grant.find(interaction.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  for (const [resource, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
    grant.addResourceScope(resource, scopes.join(' '));
  }
  const grantId = await grant.save();
  return interaction.grantId ? {} : { grantId };
}

async function interactionRoute(provider, ctx, uid, action) {
  const interaction = await provider.interactionDetails(ctx.req, ctx.res);
  if (interaction.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
  const clientId = interaction.params.client_id;
  const prompt = interaction.prompt.name;
  let result;
  if (!action) {
    if (prompt === 'login') {
      ctx.type = 'html';
      ctx.body = loginPage(uid, clientId);
      return;
    }
    counters.consent_pages += 1;
    if (!config.auto_consent) {
      ctx.type = 'html';
      ctx.body = consentPage(uid, clientId, interaction.prompt.details);
      return;
    }
    counters.consents += 1;
    result = { consent: await consentGrant(provider, interaction) };
  } else if (ctx.method !== 'POST') {
    ctx.status = 405;
    return;
  } else if (action === 'login') {
    const login = (await formBody(ctx.req)).get('login');
    if (prompt !== 'login' || !login) {
      ctx.status = 400;
      ctx.body = 'a user id (login) is required on the login prompt';
      return;
    }
    counters.logins += 1;
    result = { login: { accountId: login } };
  } else if (action === 'confirm') {
    if (prompt !== 'consent') {
      ctx.status = 400;
      ctx.body = `this interaction asks for ${prompt}, not consent`;
      return;
    }
    counters.consents += 1;
    result = { consent: await consentGrant(provider, interaction) };
  } else {
    counters.aborts += 1;
    result = { error: 'access_denied', error_description: 'the user denied the request' };
  }
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
  ctx.status = 303;
  ctx.redirect(to);
}

function testRoutes(provider) {
  return async (ctx, next) => {
    if (ctx.path === '/_test/counters' && ctx.method === 'GET') {
      ctx.body = counters;
      return;
    }
    if (ctx.path === '/_test/reset' && ctx.method === 'POST') {
      resetCounters();
      ctx.body = counters;
      return;
    }
    const match = ctx.path.match(/^\/interaction\/([\w-]+)(?:\/(login|confirm|abort))?$/);
    if (match) {
      await interactionRoute(provider, ctx, match[1], match[2]);
      return;
    }
    await next();
    if (ctx.path === '/token' && ctx.method === 'POST') await afterToken(provider, ctx);
  };
}

async function afterToken(provider, ctx) {
  const grantType = ctx.oidc?.params?.grant_type ?? 'unknown';
  const key = `${grantType}:${ctx.status}`;
  counters.tokens[key] = (counters.tokens[key] ?? 0) + 1;
  const field = config.refresh_expires_field;
  if (!field || ctx.status !== 200 || !ctx.body?.refresh_token) return;
  const token = await provider.RefreshToken.find(ctx.body.refresh_token, { ignoreExpiration: true });
  if (token) ctx.body = { ...ctx.body, [field]: Math.max(0, token.exp - Math.floor(Date.now() / 1000)) };
}

function resourceIndicators() {
  const resources = config.resources ?? {};
  return {
    enabled: true,
    defaultResource: async (_ctx, _client, oneOf) => oneOf ?? config.default_resource,
    useGrantedResource: async () => true,
    getResourceServerInfo: async (_ctx, indicator) => {
      const server = resources[indicator];
      if (!server) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
      return {
        scope: server.scope ?? '',
        audience: indicator,
        accessTokenTTL: server.ttl ?? config.ttl?.AccessToken ?? 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      };
    },
  };
}

// Client metadata may name a resource server's scopes too.
function resourceScopes() {
  return Object.values(config.resources ?? {}).flatMap((server) => (server.scope ?? '').split(' ').filter(Boolean));
}

function policy() {
  const base = interactionPolicy.base();
  if ((config.native_consent ?? 'always') === 'remembered') base.get('consent').checks.remove('native_client_prompt');
  return base;
}

function providerConfiguration() {
  const ttl = { AccessToken: 3600, RefreshToken: 14 * 24 * 3600, ClientCredentials: 600, ...(config.ttl ?? {}) };
  return {
    clients: config.clients ?? [],
    jwks: signingKeys(),
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, name: sub, email: `${sub}@example.org`, email_verified: true }),
    }),
    claims: { openid: ['sub'], profile: ['name'], email: ['email', 'email_verified'] },
    scopes: [...new Set(['openid', 'offline_access', 'profile', 'email', ...(config.scopes ?? []), ...resourceScopes()])],
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}`, policy: policy() },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      registration: { enabled: Boolean(config.registration) },
      dPoP: {
        enabled: true,
        nonceSecret: randomBytes(32),
        requireNonce: () => Boolean(config.dpop?.nonce),
      },
      resourceIndicators: resourceIndicators(),
    },
    // Every client allowed the refresh_token grant gets a refresh token, offline_access or not.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => config.rotate_refresh !== false,
    expiresWithSession: async () => false,
    ttl,
    pkce: { required: () => true },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
    enabledJWA: {
      clientAuthSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519'],
      dPoPSigningAlgValues: ['ES256', 'RS256', 'PS256', 'EdDSA', 'Ed25519'],
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<pre>${escapeHtml(JSON.stringify(out))}</pre>`);
    },
  };
}

const server = createServer();
server.listen(config.port ?? 0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, providerConfiguration());
  for (const event of ['grant.error', 'server_error', 'introspection.error', 'revocation.error']) {
    provider.on(event, (_ctx, err) => {
      counters.errors.push({ event, error: err.error ?? err.name, description: err.error_description ?? err.message });
      if (counters.errors.length > 50) counters.errors.shift();
    });
  }
  provider.use(testRoutes(provider));
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

// A test server: stop at once, whatever connections a client keeps alive.
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
