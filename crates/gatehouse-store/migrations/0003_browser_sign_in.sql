-- Signing in through the browser: the authorization code flow, OpenID Connect and the hosted
-- pages. Shared by every backend, like 0001.

-- Where a client may send people back, after sign-in and after logout: space-separated like
-- scopes (a URI has no spaces). A first-party client skips the consent page.
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN skip_consent BIGINT NOT NULL DEFAULT 0;

-- The browser session a refresh family was started from, so signing the browser out ends it. A
-- plain column, not a foreign key: purging the browser session leaves the family as it is.
ALTER TABLE refresh_families ADD COLUMN browser_session_id TEXT;
CREATE INDEX refresh_families_browser_session ON refresh_families (browser_session_id);

-- Browsers signed in to the hosted pages, known by the hash of their cookie. Kept until they
-- expire or end; a user's go with the user.
CREATE TABLE browser_sessions (
    id           TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX browser_sessions_user ON browser_sessions (user_id);
CREATE INDEX browser_sessions_expiry ON browser_sessions (expires_at);

-- Authorization codes, by hash, with what each is bound to. `used_at` and the family its use
-- started stay until the code expires, so a code that comes back is known as a replay.
CREATE TABLE authorization_codes (
    hash               TEXT PRIMARY KEY,
    client_id          TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri       TEXT NOT NULL,
    code_challenge     TEXT NOT NULL,
    nonce              TEXT,
    scope              TEXT NOT NULL,
    auth_time          BIGINT NOT NULL,
    browser_session_id TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    used_at            BIGINT,
    family_id          TEXT
);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);

-- What each person has allowed each client, so they are not asked again. Goes with either.
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
-- The key serves a user's; this serves deleting a client.
CREATE INDEX consents_client ON consents (client_id);
