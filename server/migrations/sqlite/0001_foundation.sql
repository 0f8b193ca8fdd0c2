-- Foundation: the grid, people, devices, exactly-once op results, check-ins, rejections.
-- Times are Unix milliseconds (INTEGER). Device ids are UUID text.

CREATE TABLE grid_cells (
    id         INTEGER PRIMARY KEY,
    code       TEXT    NOT NULL UNIQUE,
    parent_id  INTEGER REFERENCES grid_cells(id),
    level      INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    -- '/S1/S1-C2/' : ancestors' codes and its own, for subtree queries with LIKE 'path%'.
    path       TEXT    NOT NULL,
    retired_at INTEGER
);
CREATE INDEX grid_cells_path ON grid_cells(path);

CREATE TABLE checkpoints (
    id          INTEGER PRIMARY KEY,
    code        TEXT    NOT NULL UNIQUE,
    cell_id     INTEGER NOT NULL REFERENCES grid_cells(id),
    name        TEXT    NOT NULL,
    tag_uid     TEXT,
    latitude    REAL,
    longitude   REAL,
    radius_m    REAL    NOT NULL,
    template_id TEXT,
    retired_at  INTEGER
);

CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE assignments (
    user_id INTEGER NOT NULL REFERENCES users(id),
    cell_id INTEGER NOT NULL REFERENCES grid_cells(id),
    PRIMARY KEY (user_id, cell_id)
);

CREATE TABLE enrollment_codes (
    code_hash  BLOB    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    device_id  TEXT
);

CREATE TABLE devices (
    id                    TEXT    PRIMARY KEY,
    user_id               INTEGER NOT NULL REFERENCES users(id),
    name                  TEXT    NOT NULL,
    cert_sha256           BLOB    NOT NULL UNIQUE,
    enrolled_at           INTEGER NOT NULL,
    revoked_at            INTEGER,
    acked_through         INTEGER NOT NULL DEFAULT 0,
    last_seen_at          INTEGER,
    last_push_at          INTEGER,
    app_version           TEXT,
    sdk_version           TEXT,
    outbox_depth          INTEGER,
    oldest_pending_age_ms INTEGER,
    pending_photo_bytes   INTEGER,
    clock_offset_ms       INTEGER
);

-- The exactly-once index: one row per op a device ever sent, written in the same transaction
-- as the op's effect.
CREATE TABLE op_results (
    device_id   TEXT    NOT NULL,
    device_seq  INTEGER NOT NULL,
    op_id       BLOB    NOT NULL,
    outcome     TEXT    NOT NULL,
    code        TEXT,
    reason      TEXT,
    field       TEXT,
    message     TEXT,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, device_seq)
) WITHOUT ROWID;

CREATE TABLE check_ins (
    id               BLOB    PRIMARY KEY,
    device_id        TEXT    NOT NULL,
    device_seq       INTEGER NOT NULL,
    user_id          INTEGER NOT NULL,
    checkpoint_id    INTEGER NOT NULL,
    cell_id          INTEGER NOT NULL,
    kind             TEXT    NOT NULL,
    method           TEXT    NOT NULL,
    tag_uid          TEXT    NOT NULL,
    device_time_ms   INTEGER NOT NULL,
    monotonic_ms     INTEGER NOT NULL,
    received_at_ms   INTEGER NOT NULL,
    latitude         REAL,
    longitude        REAL,
    accuracy_m       REAL,
    fix_time_ms      INTEGER,
    mock             BOOLEAN,
    outcome          TEXT    NOT NULL,
    template_id      TEXT    NOT NULL,
    template_version INTEGER NOT NULL,
    answers          TEXT    NOT NULL,
    photos           TEXT    NOT NULL,
    note             TEXT    NOT NULL,
    hlc_wall_ms      INTEGER NOT NULL,
    hlc_logical      INTEGER NOT NULL
);
CREATE INDEX check_ins_checkpoint_time ON check_ins(checkpoint_id, device_time_ms);

-- The rejection log: every op that was refused, with what it carried, for admins.
CREATE TABLE rejections (
    device_id   TEXT    NOT NULL,
    device_seq  INTEGER NOT NULL,
    op_id       BLOB    NOT NULL,
    code        TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    field       TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, device_seq)
);
