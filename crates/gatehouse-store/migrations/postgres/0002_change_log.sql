-- Every change other nodes (and gateways) must learn of, in order. Nodes poll it by sequence.
-- Apart from sqlite/0002_change_log.sql only in how `seq` counts: a sequence, so concurrent
-- writers take numbers without waiting (and one that rolls back leaves a gap).
CREATE TABLE change_log (
    seq     BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    until   BIGINT
);
CREATE INDEX change_log_at ON change_log (at);
