// A Node service that accepts Gatehouse access tokens, checked with jose.
//
//   GATEHOUSE_ISSUER=http://127.0.0.1:8080 \
//   GATEHOUSE_FEED_CLIENT_ID=cl_... GATEHOUSE_FEED_CLIENT_SECRET=... PORT=9300 node server.mjs
//
// Routes: GET /me (any valid token), GET /rates (scope rates:read), GET /readyz.
// Every check the Gatehouse gateway makes is here, each with the reason for it.
import http from 'node:http';
import { createRemoteJWKSet, customFetch, jwtVerify } from 'jose';

const ISSUER = process.env.GATEHOUSE_ISSUER.replace(/\/$/, '');
// What Gatehouse puts in every access token's aud unless its auth.audience says otherwise.
const AUDIENCE = process.env.GATEHOUSE_AUDIENCE ?? 'gatehouse';
// A confidential client with the scope revocations:read, to follow the revocation feed.
const FEED_AUTH = 'Basic ' + Buffer.from(
  `${process.env.GATEHOUSE_FEED_CLIENT_ID}:${process.env.GATEHOUSE_FEED_CLIENT_SECRET}`,
).toString('base64');
// Asymmetric algorithms only: never "none" (no signature at all) and never HS256 & co. (a forger
// would sign with the public key as the HMAC secret). jose uses each key only with its JWK's alg.
const ALGORITHMS = ['EdDSA', 'ES256', 'RS256'];
const LEEWAY_SECS = 30; // clock skew allowed on exp, nbf and iat
const STALE_AFTER_MS = 30_000; // feed silent this long: revocations may have been missed, so refuse
const FEED_IDLE_MS = 20_000; // a keep-alive comes every 5 s; 20 s of nothing is a dead link
const DAY = 86400;

// RFC 8414 §3.3: the metadata must be the issuer's own, or we would trust someone else's keys.
const metadata = await (await fetch(`${ISSUER}/.well-known/oauth-authorization-server`)).json();
if (metadata.issuer !== ISSUER) throw new Error('the discovery document names another issuer');

// The key set with only the keys we may use: signature keys (no "use", or "sig") of our
// algorithms. Anything else is left out, so one odd member cannot spoil the whole set for jose;
// a set that does not parse keeps the keys we had. jose also checks that kty fits the alg.
async function fetchSigningKeys(url, options) {
  const answer = await fetch(url, options);
  if (answer.status !== 200) return answer;
  const found = (await answer.json())?.keys;
  const usable = (Array.isArray(found) ? found : []).filter((jwk) => {
    const ok = ALGORITHMS.includes(jwk?.alg) && (jwk.use ?? 'sig') === 'sig';
    if (!ok) console.warn(`JWKS: a key skipped: ${JSON.stringify(jwk)?.slice(0, 200)}`);
    return ok;
  });
  return Response.json({ keys: usable });
}

// The issuer's keys by kid. A kid we do not know may be a key the issuer just started signing
// with: jose fetches the set again, but at most every 10 s, so made-up kids cannot have us hammer
// the issuer.
const keys = createRemoteJWKSet(new URL(metadata.jwks_uri), {
  cooldownDuration: 10_000,
  [customFetch]: fetchSigningKeys,
});

// What the revocation feed has said. A signature stays valid after a revocation, so only the feed
// can tell that a token was revoked, its sign-in session ended, or its user or client cut off
// (blocked, deleted, password changed...).
const revoked = { jtis: new Map(), sids: new Map(), cutoffs: new Map() };
let caughtUp = false; // this connection's backlog has arrived
let lastHeard = -Infinity; // the latest bytes from the feed since then

// Until the backlog has arrived, and after a long silence, we may not know a revocation.
const current = () => caughtUp && Date.now() - lastHeard < STALE_AFTER_MS;

function apply(event, data) {
  // Events may repeat or come out of order: keep the furthest time.
  const keepLatest = (known, key, at) => known.set(key, Math.max(known.get(key) ?? at, at));
  if (event === 'token_revoked') keepLatest(revoked.jtis, data.jti, data.until);
  else if (event === 'session_revoked') keepLatest(revoked.sids, data.sid, data.until);
  else if (event === 'subject_cutoff') keepLatest(revoked.cutoffs, data.subject, data.not_before);
  else if (event === 'caught_up') [caughtUp, lastHeard] = [true, Date.now()];
}

function isRevoked(claims) {
  const cutOff = [claims.sub, claims.client_id]
    .some((who) => claims.iat < (revoked.cutoffs.get(who) ?? -Infinity));
  return revoked.jtis.has(claims.jti) || revoked.sids.has(claims.sid) || cutOff;
}

function forgetExpired() {
  // A revoked token is refused anyway once expired; a cut-off outlives any token (a day).
  const now = Date.now() / 1000;
  const kept = [[revoked.jtis, LEEWAY_SECS], [revoked.sids, LEEWAY_SECS], [revoked.cutoffs, DAY]];
  for (const [known, keep] of kept) {
    for (const [key, at] of known) if (at + keep < now) known.delete(key);
  }
}

// Reads the server-sent events at /oauth2/revocations for ever, resuming after a break from the
// newest event id applied (Last-Event-ID), so nothing revoked meanwhile is missed.
async function followFeed() {
  let lastId; // the newest id of an event applied: only such an id is safe to resume from
  for (;;) {
    // A new connection replays what we missed: not current until its caught_up arrives.
    caughtUp = false;
    const abort = new AbortController();
    let idle = setTimeout(() => abort.abort(), FEED_IDLE_MS);
    try {
      const headers = { authorization: FEED_AUTH, accept: 'text/event-stream' };
      if (lastId !== undefined) headers['last-event-id'] = String(lastId);
      const answer = await fetch(metadata.revocation_feed_endpoint, {
        headers,
        signal: abort.signal,
      });
      if (!answer.ok) throw new Error(`feed answered ${answer.status}`);
      const decoder = new TextDecoder();
      let buffer = '';
      let event;
      let data = '';
      let pendingId;
      for await (const chunk of answer.body) {
        if (caughtUp) lastHeard = Date.now(); // keep-alives count as life too
        clearTimeout(idle);
        idle = setTimeout(() => abort.abort(), FEED_IDLE_MS);
        buffer += decoder.decode(chunk, { stream: true });
        const lines = buffer.split(/\r\n|\r|\n/);
        buffer = lines.pop(); // an unfinished line waits for the next chunk
        for (const line of lines) {
          const colon = line.indexOf(':');
          const field = colon === -1 ? line : line.slice(0, colon);
          const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (line === '') { // a blank line ends an event
            if (event === 'keys_changed') await keys.reload(); // a key added, or one retired
            else if (event) apply(event, JSON.parse(data));
            // Applied: from now on, resume after it.
            if (pendingId !== undefined) lastId = Math.max(lastId ?? 0, pendingId);
            event = undefined;
            data = '';
            pendingId = undefined;
          } else if (line.startsWith(':')) forgetExpired(); // a keep-alive (5 s): tidy up
          else if (field === 'event') event = value;
          else if (field === 'data') data += value + '\n';
          // Ids are sequence numbers; events sent out of turn carry none.
          else if (field === 'id' && /^\d+$/.test(value)) pendingId = Number(value);
        }
      }
    } catch (error) {
      // A broken link, or an event that would not apply: it comes again after lastId.
      console.warn(`revocation feed: ${error?.message ?? error}; reconnecting`);
    } finally {
      clearTimeout(idle);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

class Refused extends Error {
  // An RFC 6750 refusal: 401 invalid_token (or no error code when no token was sent), or 403
  // insufficient_scope with the scope that was needed.
  constructor(status, error, description, scope) {
    super(description);
    Object.assign(this, { status, error, scope });
  }
}

// The verified claims of the request's bearer token, or a Refused.
async function caller(request) {
  const [scheme, token] = (request.headers.authorization ?? '').split(' ');
  if (scheme?.toLowerCase() !== 'bearer' || !token) {
    throw new Refused(401, undefined, 'no bearer token'); // RFC 6750 §3.1: no error code
  }
  if (!current()) throw new Refused(503, 'temporarily_unavailable', 'revocations are not current');
  let verified;
  try {
    verified = await jwtVerify(token, keys, {
      algorithms: ALGORITHMS,
      // RFC 9068 §4: access tokens say so. An ID token (typ JWT) is signed with the same keys but
      // is proof of a sign-in for a client, not permission to call this service.
      typ: 'at+jwt',
      issuer: ISSUER, // a token from another issuer, signed with its own keys
      audience: AUDIENCE, // RFC 9068 §4: a token meant for another service is not for us
      clockTolerance: LEEWAY_SECS, // exp and nbf are checked with it
      requiredClaims: ['sub', 'exp', 'iat', 'jti'],
      // jose refuses any "crit" header it does not understand (RFC 7515 §4.1.11) by itself.
    });
  } catch (error) { // bad signature, unknown key, expired, wrong iss or aud...
    throw new Refused(401, 'invalid_token', error.message);
  }
  if (isRevoked(verified.payload)) {
    throw new Refused(401, 'invalid_token', 'the token has been revoked');
  }
  return verified.payload;
}

// A route's requirement: a valid token holding every one of `needed`.
async function withScopes(request, needed) {
  const claims = await caller(request);
  const granted = new Set((claims.scope ?? '').split(' '));
  if (!needed.every((scope) => granted.has(scope))) {
    throw new Refused(403, 'insufficient_scope', 'the token lacks a scope', needed.join(' '));
  }
  return claims;
}

const routes = {
  '/me': async (request) => {
    const claims = await caller(request);
    return { subject: claims.sub, client_id: claims.client_id };
  },
  '/rates': async (request) => {
    const claims = await withScopes(request, ['rates:read']);
    return { subject: claims.sub, rates: { 'BTC-EUR': '81234.50' } };
  },
};

function send(response, status, body, headers = {}) {
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

const server = http.createServer(async (request, response) => {
  const path = new URL(request.url, 'http://localhost').pathname;
  if (path === '/readyz') {
    // Not ready until the feed's backlog has arrived: only then are revocations known.
    return send(response, current() ? 200 : 503, { ready: current() });
  }
  const route = routes[path];
  if (!route || request.method !== 'GET') return send(response, 404, { error: 'not_found' });
  try {
    send(response, 200, await route(request));
  } catch (error) {
    if (!(error instanceof Refused)) {
      console.error(error);
      return send(response, 500, { error: 'server_error' });
    }
    if (error.status === 503) {
      return send(response, 503, { error: error.error }, { 'retry-after': '1' });
    }
    let challenge = 'Bearer realm="gatehouse"';
    if (error.error) {
      const description = error.message.replace(/["\\]/g, "'");
      challenge += `, error="${error.error}", error_description="${description}"`;
    }
    if (error.scope) challenge += `, scope="${error.scope}"`;
    send(response, error.status, { error: error.error, error_description: error.message }, {
      'www-authenticate': challenge,
    });
  }
});

// The loop ends only on a bug: then stop, rather than serve with revocations forgotten.
followFeed().catch((error) => {
  console.error('revocation feed stopped:', error);
  process.exit(1);
});
server.listen(Number(process.env.PORT ?? 9300), process.env.HOST ?? '127.0.0.1');
