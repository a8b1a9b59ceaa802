// A real OpenID Provider for Parley's single sign-on tests: panva's oidc-provider (an
// OpenID Certified implementation), configured per test.
//
//   node tests/oidc/provider.mjs CONFIG.json
//
// CONFIG: {"accounts": {"<sub>": {claims...}}, "clients": [client metadata...]}. It
// listens on a free loopback port and prints one JSON line, {"issuer": "http://127.0.0.1:N"},
// once it serves. Its sign-in page is a form with one "Username" field (an account's
// sub); consent is granted to every client (first-party clients, as a company's IdP
// treats its own apps).
//
// Test controls (tests/oidc/__init__.py drives them), on the same port:
//   PUT  /__test/clients   body: client metadata; adds or replaces a client (the RP's
//                          redirect URI is only known once Parley listens)
//   POST /__test/next      body: {"tamper": "payload"} changes the next token response's
//                          ID token payload without re-signing it; {"nonce": "x"} makes
//                          the next authorization request's nonce "x" (a correctly signed
//                          ID token carrying the wrong nonce)
//   GET  /__test/requests  every other request served so far: {method, path, via (the Via
//                          header a forward proxy adds, or null), port (the client's
//                          source port: one per TCP connection)}
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const accounts = config.accounts || {};
const next = { tamper: null, nonce: null };
const served = [];

// oidc-provider's storage, in memory; dynamic clients live in it too ("Client" model).
const stores = new Map();
class MemoryAdapter {
  constructor(name) {
    this.name = name;
    if (!stores.has(name)) stores.set(name, new Map());
    this.store = stores.get(name);
  }
  async upsert(id, payload, expiresIn) {
    this.store.set(id, { payload, expires: expiresIn ? Date.now() + expiresIn * 1000 : null });
  }
  async find(id) {
    const found = this.store.get(id);
    if (!found) return undefined;
    if (found.expires && found.expires < Date.now()) { this.store.delete(id); return undefined; }
    return found.payload;
  }
  async findByUserCode(code) { return this.findBy((p) => p.userCode === code); }
  async findByUid(uid) { return this.findBy((p) => p.uid === uid); }
  async findBy(test) {
    for (const [id, entry] of this.store) if (test(entry.payload)) return this.find(id);
    return undefined;
  }
  async consume(id) { const f = this.store.get(id); if (f) f.payload.consumed = Math.floor(Date.now() / 1000); }
  async destroy(id) { this.store.delete(id); }
  async revokeByGrantId(grantId) {
    for (const [id, entry] of this.store) if (entry.payload.grantId === grantId) this.store.delete(id);
  }
}

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test-rs256", alg: "RS256", use: "sig" };

const server = createServer();
// Idle connections are kept a minute (node's default is five seconds), so a test can see
// a client reuse one across sign-ins however slowly the machine runs them.
server.keepAliveTimeout = 60_000;
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  adapter: MemoryAdapter,
  clients: config.clients || [],
  jwks: { keys: [jwk] },
  cookies: { keys: ["parley-test-cookie-key"] },
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name", "preferred_username"],
    groups: ["groups"],
  },
  scopes: ["openid", "email", "profile", "groups"],
  conformIdTokenClaims: false, // the ID token carries the scopes' claims (as most IdPs do)
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = `<!doctype html><html><head><title>Sign out</title></head><body>
          <h1>Sign out of the test provider?</h1>${form}
          <button type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>
          </body></html>`;
      },
    },
  },
  async findAccount(ctx, sub) {
    const claims = accounts[sub];
    if (!claims) return undefined;
    return { accountId: sub, async claims() { return { sub, ...claims }; } };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const found = await ctx.oidc.provider.Grant.find(grantId);
      if (found) return found;
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope("openid email profile groups");
    await grant.save();
    return grant;
  },
  renderError(ctx, out) {
    ctx.type = "html";
    ctx.body = `<!doctype html><title>Error</title><h1>${out.error}</h1><p>${out.error_description || ""}</p>`;
  },
});

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

provider.use(async (ctx, nextMiddleware) => {
  if (ctx.path === "/__test/requests" && ctx.method === "GET") {
    ctx.body = served;
    return;
  }
  if (!ctx.path.startsWith("/__test/")) {
    served.push({
      method: ctx.method,
      path: ctx.path,
      via: ctx.get("via") || null,
      port: ctx.req.socket.remotePort,
    });
  }
  if (ctx.path === "/__test/clients" && ctx.method === "PUT") {
    const metadata = JSON.parse(await readBody(ctx.req));
    await new MemoryAdapter("Client").upsert(metadata.client_id, metadata);
    ctx.status = 204;
    return;
  }
  if (ctx.path === "/__test/next" && ctx.method === "POST") {
    Object.assign(next, JSON.parse(await readBody(ctx.req)));
    ctx.status = 204;
    return;
  }
  const match = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (match) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (ctx.method === "GET") {
      ctx.type = "html";
      ctx.body = `<!doctype html><html><head><title>Test provider: sign in</title></head><body>
        <main><h1>Sign in to the test provider</h1>
        <form method="post" action="/interaction/${escape(match[1])}">
          <label>Username <input name="login" autocomplete="username" autofocus></label>
          <button type="submit">Continue</button>
        </form></main></body></html>`;
      return;
    }
    const form = new URLSearchParams(await readBody(ctx.req));
    const login = form.get("login");
    if (!accounts[login]) {
      ctx.status = 400;
      ctx.type = "html";
      ctx.body = "<!doctype html><title>Unknown user</title><p>No such user.</p>";
      return;
    }
    const result = details.prompt.name === "login" ? { login: { accountId: login } } : {};
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.respond = false;
    return;
  }
  if (ctx.path === "/auth" && next.nonce !== null) {
    const url = new URL(ctx.href);
    url.searchParams.set("nonce", next.nonce);
    next.nonce = null;
    ctx.url = url.pathname + url.search;
  }
  await nextMiddleware();
  if (ctx.path === "/token" && next.tamper === "payload" && ctx.body?.id_token) {
    const [head, payload, signature] = ctx.body.id_token.split(".");
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    claims.email = "mallory@example.com";
    const forged = Buffer.from(JSON.stringify(claims)).toString("base64url");
    ctx.body = { ...ctx.body, id_token: `${head}.${forged}.${signature}` };
    next.tamper = null;
  }
});

server.on("request", provider.callback());
process.stdout.write(JSON.stringify({ issuer }) + "\n");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
