-- Hazards: an append-only, hash-chained log per hazard, and the folded current state on the
-- hazards row. The change log: what devices pull, in commit order.

ALTER TABLE hazards ADD COLUMN description   TEXT    NOT NULL DEFAULT '';
ALTER TABLE hazards ADD COLUMN handling      TEXT    NOT NULL DEFAULT 'on_the_spot';
ALTER TABLE hazards ADD COLUMN deadline_ms   INTEGER;
ALTER TABLE hazards ADD COLUMN agency        TEXT;
ALTER TABLE hazards ADD COLUMN duplicate_of  BLOB;
ALTER TABLE hazards ADD COLUMN conflicts     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hazards ADD COLUMN log_len       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hazards ADD COLUMN chain_head    BLOB;
ALTER TABLE hazards ADD COLUMN updated_at_ms INTEGER NOT NULL DEFAULT 0;

CREATE TABLE hazard_log (
    hazard_id      BLOB    NOT NULL,
    position       INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    entry_id       BLOB    NOT NULL,
    device_id      TEXT    NOT NULL,
    user_id        INTEGER NOT NULL,
    role           TEXT    NOT NULL,
    hlc_wall_ms    INTEGER NOT NULL,
    hlc_logical    INTEGER NOT NULL,
    payload        BLOB    NOT NULL,
    received_at_ms INTEGER NOT NULL,
    hash           BLOB    NOT NULL,
    PRIMARY KEY (hazard_id, position)
);
-- A report or event is one entity however many ops carry it.
CREATE UNIQUE INDEX hazard_log_entry ON hazard_log(kind, entry_id);

CREATE TABLE changes (
    seq          INTEGER PRIMARY KEY,
    cell_path    TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    entity_key   TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    device_id    TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    hlc_wall_ms  INTEGER NOT NULL,
    hlc_logical  INTEGER NOT NULL,
    superseded   BOOLEAN NOT NULL DEFAULT FALSE,
    committed_at INTEGER NOT NULL
);
CREATE INDEX changes_entity ON changes(entity_key);
