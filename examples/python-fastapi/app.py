"""A FastAPI service that accepts Gatehouse access tokens, checked with PyJWT.

    GATEHOUSE_ISSUER=http://127.0.0.1:8080 \
    GATEHOUSE_FEED_CLIENT_ID=cl_... GATEHOUSE_FEED_CLIENT_SECRET=... \
    uvicorn app:app --port 9200

Routes: GET /me (any valid token), GET /rates (scope rates:read), GET /readyz.
Every check the Gatehouse gateway makes is here, each with the reason for it.
"""

import asyncio
import contextlib
import json
import logging
import os
import time

import httpx
import jwt
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

ISSUER = os.environ["GATEHOUSE_ISSUER"].rstrip("/")
# What Gatehouse puts in every access token's aud unless its auth.audience says otherwise.
AUDIENCE = os.environ.get("GATEHOUSE_AUDIENCE", "gatehouse")
# A confidential client with the scope revocations:read, to follow the revocation feed.
FEED_CLIENT = (os.environ["GATEHOUSE_FEED_CLIENT_ID"], os.environ["GATEHOUSE_FEED_CLIENT_SECRET"])
# Asymmetric algorithms only: never "none" (no signature at all) and never HS256 & co. (a forger
# would sign with the public key as the HMAC secret). Each key is used only with its JWK's "alg".
ALGORITHMS = {"EdDSA", "ES256", "RS256"}
LEEWAY_SECS = 30  # clock skew allowed on exp, nbf and iat
JWKS_COOLDOWN_SECS = 10  # an unknown kid refetches the key set at most this often
STALE_AFTER_SECS = 30  # feed silent this long: revocations may have been missed, so refuse
FEED_IDLE_SECS = 20  # the issuer sends a keep-alive every 5 s; 20 s of nothing is a dead link
DAY = 86400

log = logging.getLogger("example")
http = httpx.AsyncClient(timeout=httpx.Timeout(10, read=FEED_IDLE_SECS))


class Refused(Exception):
    """An RFC 6750 refusal: 401 invalid_token (or no error code when no token was sent), or 403
    insufficient_scope with the scope that was needed."""

    def __init__(self, status=401, error=None, description=None, scope=None):
        self.status, self.error, self.description, self.scope = status, error, description, scope


# The key type each algorithm needs (RFC 7518 §6, RFC 8037 §2).
KEY_TYPES = {"EdDSA": "OKP", "ES256": "EC", "RS256": "RSA"}


def usable(jwk):
    """(kid, PyJWK), or None (and a log line) for a key we must not or cannot use."""
    try:
        alg = jwk["alg"]
        if alg not in ALGORITHMS or jwk.get("kty") != KEY_TYPES[alg]:
            raise ValueError(f"alg {alg!r} with kty {jwk.get('kty')!r}")
        if jwk.get("use", "sig") != "sig":  # e.g. an encryption key: never for signatures
            raise ValueError(f"use {jwk['use']!r}")
        return jwk["kid"], jwt.PyJWK(jwk, alg)
    except (jwt.PyJWKError, jwt.InvalidKeyError, KeyError, TypeError, ValueError) as error:
        log.warning("JWKS: a key skipped: %r", error)
        return None


class Keys:
    """The issuer's signing keys by kid."""

    def __init__(self):
        self.by_kid, self.fetched_at, self.jwks_uri = {}, float("-inf"), None
        self.lock = asyncio.Lock()  # held while fetching

    async def refresh(self):
        """Fetches the key set; an error (HTTP, or a set that does not parse) keeps the old keys.
        Called with the lock held."""
        answer = await http.get(self.jwks_uri)
        answer.raise_for_status()
        found = answer.json()["keys"]
        self.by_kid = dict(filter(None, map(usable, found)))
        self.fetched_at = time.monotonic()

    async def get(self, kid):
        # A kid we do not know may be a key the issuer just started signing with: fetch again,
        # but not on every request, or made-up kids would have us hammer the issuer.
        if kid in self.by_kid:
            return self.by_kid[kid]
        async with self.lock:  # requests with unknown kids at once make a single fetch
            if kid not in self.by_kid and time.monotonic() - self.fetched_at > JWKS_COOLDOWN_SECS:
                try:
                    await self.refresh()
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
                    self.fetched_at = time.monotonic()  # a failure also waits out the cool-down
                    log.warning("JWKS: %r; keeping the keys we have", error)
        return self.by_kid.get(kid)


class Revocations:
    """What the revocation feed has said. A signature stays valid after a revocation, so only the
    feed can tell that a token was revoked, its sign-in session ended, or its user or client cut
    off (blocked, deleted, password changed...)."""

    def __init__(self):
        self.jtis, self.sids, self.cutoffs = {}, {}, {}
        # caught_up: this connection's backlog has arrived; last_heard: its latest bytes since.
        self.caught_up, self.last_heard = False, float("-inf")

    def apply(self, event, data):
        def keep_latest(known, key, at):  # events may repeat or come out of order
            known[key] = max(known.get(key, at), at)

        if event == "token_revoked":
            keep_latest(self.jtis, data["jti"], data["until"])
        elif event == "session_revoked":
            keep_latest(self.sids, data["sid"], data["until"])
        elif event == "subject_cutoff":
            keep_latest(self.cutoffs, data["subject"], data["not_before"])
        elif event == "caught_up":
            self.caught_up, self.last_heard = True, time.monotonic()

    def current(self):
        # Until the backlog has arrived, and after a long silence, we may not know a revocation.
        return self.caught_up and time.monotonic() - self.last_heard < STALE_AFTER_SECS

    def revoked(self, claims):
        cut_off = any(
            claims["iat"] < self.cutoffs.get(who, float("-inf"))
            for who in {claims["sub"], claims.get("client_id")}
        )
        return claims["jti"] in self.jtis or claims.get("sid") in self.sids or cut_off

    def forget_expired(self):
        # A revoked token is refused anyway once expired; a cut-off outlives any token (a day).
        now = time.time()
        for known, keep in (self.jtis, LEEWAY_SECS), (self.sids, LEEWAY_SECS), (self.cutoffs, DAY):
            for key in [key for key, at in known.items() if at + keep < now]:
                del known[key]


keys, revocations = Keys(), Revocations()


async def follow_feed(feed_url):
    """Reads the server-sent events at /oauth2/revocations for ever, resuming after a break from
    the newest event id applied (Last-Event-ID), so nothing revoked meanwhile is missed."""
    last_id = None  # the newest id of an event applied: only such an id is safe to resume from
    while True:
        headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
        # A new connection replays what we missed: not current until its caught_up arrives.
        revocations.caught_up = False
        try:
            async with http.stream("GET", feed_url, auth=FEED_CLIENT, headers=headers) as answer:
                answer.raise_for_status()
                event, data, pending_id = None, "", None
                async for line in answer.aiter_lines():
                    if revocations.caught_up:  # keep-alives count as life too
                        revocations.last_heard = time.monotonic()
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if line == "":  # a blank line ends an event
                        if event == "keys_changed":
                            async with keys.lock:  # a key added, or one retired: stop trusting it
                                await keys.refresh()
                        elif event:
                            revocations.apply(event, json.loads(data))
                        if pending_id is not None:  # applied: from now on, resume after it
                            last_id = max(last_id or 0, pending_id)
                        event, data, pending_id = None, "", None
                    elif line.startswith(":"):  # a keep-alive, every 5 s: time to tidy up
                        revocations.forget_expired()
                    elif field == "event":
                        event = value
                    elif field == "data":
                        data += value + "\n"
                    elif field == "id" and value.isdigit():
                        # Ids are sequence numbers; events sent out of turn carry none.
                        pending_id = int(value)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            # A broken link, or an event that would not apply: it comes again after last_id.
            log.warning("revocation feed: %r; reconnecting", error)
        await asyncio.sleep(1)


@contextlib.asynccontextmanager
async def lifespan(app):
    metadata = (await http.get(f"{ISSUER}/.well-known/oauth-authorization-server")).json()
    # RFC 8414 §3.3: the metadata must be the issuer's own, or we would trust someone else's keys.
    if metadata["issuer"] != ISSUER:
        raise RuntimeError(f"the discovery document names another issuer: {metadata['issuer']}")
    keys.jwks_uri = metadata["jwks_uri"]
    async with keys.lock:
        await keys.refresh()
    feed = asyncio.create_task(follow_feed(metadata["revocation_feed_endpoint"]))
    yield
    feed.cancel()


app = FastAPI(lifespan=lifespan)


@app.exception_handler(Refused)
async def refusal(request, refused):
    challenge = 'Bearer realm="gatehouse"'
    if refused.error:
        description = refused.description.replace('"', "'").replace("\\", "")
        challenge += f', error="{refused.error}", error_description="{description}"'
    if refused.scope:
        challenge += f', scope="{refused.scope}"'
    body = {"error": refused.error, "error_description": refused.description}
    return JSONResponse(body, refused.status, headers={"WWW-Authenticate": challenge})


async def caller(request: Request):
    """The verified claims of the request's bearer token, or a refusal."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Refused(description="no bearer token")  # RFC 6750 §3.1: no error code
    if not revocations.current():
        raise HTTPException(503, "revocations are not current", headers={"Retry-After": "1"})
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise Refused(401, "invalid_token", "not a JWT")
    # RFC 9068 §4: access tokens say so. An ID token (typ JWT) is signed with the same keys but
    # is proof of a sign-in for a client, not permission to call this service.
    if header.get("typ") != "at+jwt":
        raise Refused(401, "invalid_token", "not an access token")
    # RFC 7515 §4.1.11: a critical header names an extension we would not honour.
    if "crit" in header:
        raise Refused(401, "invalid_token", "unsupported critical header")
    key = await keys.get(header.get("kid"))
    # The key's own alg decides: a token cannot pick a weaker algorithm for a key.
    if key is None or header.get("alg") != key.algorithm_name:
        raise Refused(401, "invalid_token", "no key with this kid and alg")
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],
            issuer=ISSUER,  # a token from another issuer, signed with its own keys
            audience=AUDIENCE,  # RFC 9068 §4: a token meant for another service is not for us
            leeway=LEEWAY_SECS,  # exp and nbf (and iat in the future) are checked with it
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
        )
    except jwt.InvalidTokenError as error:  # bad signature, expired, wrong iss or aud...
        raise Refused(401, "invalid_token", str(error))
    if revocations.revoked(claims):
        raise Refused(401, "invalid_token", "the token has been revoked")
    return claims


def scopes(*needed):
    """A route's requirement: a valid token holding every one of `needed`."""

    async def check(claims=Depends(caller)):
        granted = set(claims.get("scope", "").split())
        if not granted.issuperset(needed):
            raise Refused(403, "insufficient_scope", "the token lacks a scope", " ".join(needed))
        return claims

    return check


@app.get("/me")
async def me(claims=Depends(caller)):
    return {"subject": claims["sub"], "client_id": claims.get("client_id")}


@app.get("/rates")
async def rates(claims=Depends(scopes("rates:read"))):
    return {"subject": claims["sub"], "rates": {"BTC-EUR": "81234.50"}}


@app.get("/readyz")
async def readyz():
    # Not ready until the feed's backlog has arrived: only then are revocations known.
    return JSONResponse({"ready": revocations.current()}, 200 if revocations.current() else 503)
