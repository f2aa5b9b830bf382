-- Every change other nodes (and gateways) must learn of, in order. Nodes poll it by sequence.
CREATE TABLE change_log (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    until   INTEGER
);
CREATE INDEX change_log_at ON change_log (at);
