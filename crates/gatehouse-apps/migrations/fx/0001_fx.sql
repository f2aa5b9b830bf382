CREATE TABLE fx_currencies (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    sign TEXT NOT NULL
);

CREATE TABLE fx_rates (
    base TEXT NOT NULL REFERENCES fx_currencies (code) ON DELETE CASCADE,
    target TEXT NOT NULL REFERENCES fx_currencies (code) ON DELETE CASCADE,
    rate TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (base, target)
);
