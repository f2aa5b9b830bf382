-- Every change other nodes (and gateways) must learn of, in order. Nodes poll it by sequence.
-- Apart from postgres/0002_change_log.sql only in how `seq` counts: AUTOINCREMENT never reuses a
-- number, even one whose entry was purged.
CREATE TABLE change_log (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    until   BIGINT
);
CREATE INDEX change_log_at ON change_log (at);
