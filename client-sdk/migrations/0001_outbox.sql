-- The device's local store: identity, the outbox of ops not yet acknowledged, the ops the
-- server refused, and counters. Written with synchronous=FULL: a check-in that was recorded
-- survives a crash or power loss.

CREATE TABLE identity (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    device_id   TEXT    NOT NULL,
    server      TEXT    NOT NULL,
    user_name   TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    grid_cells  TEXT    NOT NULL,
    enrolled_at INTEGER NOT NULL
);

CREATE TABLE outbox (
    device_seq    INTEGER PRIMARY KEY,
    op_id         BLOB    NOT NULL,
    kind          TEXT    NOT NULL,
    record_id     BLOB    NOT NULL,
    payload       BLOB    NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE rejected (
    device_seq    INTEGER PRIMARY KEY,
    op_id         BLOB    NOT NULL,
    kind          TEXT    NOT NULL,
    record_id     BLOB    NOT NULL,
    payload       BLOB    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    code          TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    field         TEXT    NOT NULL,
    message       TEXT    NOT NULL,
    rejected_at   INTEGER NOT NULL
);

CREATE TABLE counters (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (key, value) VALUES ('last_seq', 0), ('hlc_wall_ms', 0), ('hlc_logical', 0);

CREATE TABLE sync_state (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    last_attempt_at_ms INTEGER,
    last_success_at_ms INTEGER,
    last_error         TEXT
);
INSERT INTO sync_state (id) VALUES (1);
