CREATE TABLE rates_assets (
    symbol TEXT PRIMARY KEY,
    rate TEXT NOT NULL,
    -- The rate at the start of the current 24-hour window, for change_24h.
    open_rate TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
