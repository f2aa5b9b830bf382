-- The schema every backend shares: written once, in types both accept. Times are Unix seconds
-- (BIGINT, an INTEGER on SQLite); bytes are BYTEA, which SQLite stores as the blob it is given.
-- What cannot be written once lives in sqlite/ or postgres/, numbered into this same sequence.
CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,
    alg                TEXT NOT NULL,
    sealed_private_key BYTEA NOT NULL,
    public_jwk         TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    activates_at       BIGINT NOT NULL,
    retired_at         BIGINT
);

CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    scopes      TEXT NOT NULL
);

INSERT INTO roles (name, description, scopes) VALUES
    ('user', 'Signed-up people: ordinary use of the applications', 'fx:read orders posts rates:read'),
    ('admin', 'Administrators: every scope and the admin API', 'admin fx:read fx:write orders posts rates:read');

CREATE TABLE clients (
    id                         TEXT PRIMARY KEY,
    name                       TEXT NOT NULL,
    secret_hash                TEXT,
    auth_method                TEXT NOT NULL,
    grant_types                TEXT NOT NULL,
    scopes                     TEXT,
    registration_token_hash    TEXT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL,
    blocked_at                 BIGINT,
    not_before                 BIGINT NOT NULL,
    -- Secret rotation: the previous secret keeps working until it expires, so deployments can roll.
    previous_secret_hash       TEXT,
    previous_secret_expires_at BIGINT
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    blocked_at    BIGINT,
    not_before    BIGINT NOT NULL
);
-- "Alice" and "alice" are one account.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

-- Who holds which role, in the order they were given (tokens list them in that order). A role
-- cannot be deleted while held; a holder's rows go with it.
CREATE TABLE user_roles (
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role     TEXT NOT NULL REFERENCES roles (name),
    position BIGINT NOT NULL,
    PRIMARY KEY (user_id, role)
);
CREATE INDEX user_roles_role ON user_roles (role);

CREATE TABLE client_roles (
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    role      TEXT NOT NULL REFERENCES roles (name),
    position  BIGINT NOT NULL,
    PRIMARY KEY (client_id, role)
);
CREATE INDEX client_roles_role ON client_roles (role);

CREATE TABLE refresh_families (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);
CREATE INDEX refresh_families_client ON refresh_families (client_id);
CREATE INDEX refresh_families_expiry ON refresh_families (expires_at);

CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Access tokens revoked before their expiry, by jti. Kept until the token would have expired.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    subject    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

CREATE TABLE audit_events (
    id        TEXT PRIMARY KEY,
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    subject   TEXT,
    client_id TEXT,
    actor     TEXT,
    ip        TEXT,
    detail    TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_subject ON audit_events (subject, at);
CREATE INDEX audit_events_kind ON audit_events (kind, at);
