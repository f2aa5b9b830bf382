-- A browser's visit to the shop, keyed by a hash of its cookie (gatehouse_token::token_hash). Tokens are sealed
-- (AES-256-GCM, bound to the row) and never leave the server.
CREATE TABLE shop_sessions (
    id_hash TEXT PRIMARY KEY,
    csrf TEXT NOT NULL,
    subject TEXT,
    username TEXT,
    sealed_tokens TEXT,
    access_expires_at BIGINT,
    -- A sign-in under way: what to check when the browser comes back.
    pending_sign_in TEXT,
    pending_at BIGINT,
    return_to TEXT,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX shop_sessions_last_seen ON shop_sessions (last_seen_at);

-- A person's cart, by subject: it outlives their sign-in sessions.
CREATE TABLE shop_cart_lines (
    subject TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    added_at BIGINT NOT NULL,
    PRIMARY KEY (subject, product_id)
);
