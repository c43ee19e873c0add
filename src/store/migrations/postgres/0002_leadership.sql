-- The leader of the servers sharing this database: one row. The role itself is a session
-- advisory lock held by the leader's dedicated connection; this row records its term (raised
-- at every change, so writes of an older term can be refused), where the others reach it, and
-- when it last said it was alive.
CREATE TABLE leadership (
    id           SMALLINT PRIMARY KEY CHECK (id = 1),
    term         BIGINT NOT NULL,
    address      TEXT NOT NULL,
    heartbeat_ms BIGINT NOT NULL
);
INSERT INTO leadership (id, term, address, heartbeat_ms) VALUES (1, 0, '', 0);
