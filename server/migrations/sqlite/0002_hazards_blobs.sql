-- Where hazards and photos will live. Created now so counts and foreign keys have a home;
-- the hazard event log, field registers and blob staging come with their features.

CREATE TABLE hazards (
    id             BLOB    PRIMARY KEY,
    cell_id        INTEGER NOT NULL REFERENCES grid_cells(id),
    device_id      TEXT    NOT NULL,
    user_id        INTEGER NOT NULL REFERENCES users(id),
    category       TEXT    NOT NULL,
    severity       TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    reported_at_ms INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL
);
CREATE INDEX hazards_cell_status ON hazards(cell_id, status);

CREATE TABLE blobs (
    sha256       BLOB    PRIMARY KEY,
    size         INTEGER NOT NULL,
    stored_at_ms INTEGER NOT NULL
);
