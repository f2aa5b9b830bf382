-- Secret rotation: the previous secret keeps working until it expires, so deployments can roll.
ALTER TABLE clients ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE clients ADD COLUMN previous_secret_expires_at INTEGER;
CREATE INDEX audit_events_kind ON audit_events (kind, at);
