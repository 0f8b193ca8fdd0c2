-- The device's local view of its scope, filled by pull: grid cells, checkpoints, and every op of
-- every hazard it can see (its own included, applied optimistically before the server has them).

CREATE TABLE pull_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    cursor       INTEGER NOT NULL,
    bootstrapped INTEGER NOT NULL
);
INSERT INTO pull_state (id, cursor, bootstrapped) VALUES (1, 0, 0);

CREATE TABLE cells (
    code    TEXT    PRIMARY KEY,
    parent  TEXT    NOT NULL,
    level   INTEGER NOT NULL,
    name    TEXT    NOT NULL,
    retired INTEGER NOT NULL
);

CREATE TABLE checkpoints (
    code      TEXT PRIMARY KEY,
    cell      TEXT NOT NULL,
    name      TEXT NOT NULL,
    tag_uid   TEXT NOT NULL,
    latitude  REAL,
    longitude REAL,
    radius_m  REAL NOT NULL
);

CREATE TABLE hazard_ops (
    hlc_wall_ms INTEGER NOT NULL,
    hlc_logical INTEGER NOT NULL,
    device_id   TEXT    NOT NULL,
    hazard_id   BLOB    NOT NULL,
    kind        TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    PRIMARY KEY (hlc_wall_ms, hlc_logical, device_id)
);
CREATE INDEX hazard_ops_hazard ON hazard_ops(hazard_id);
