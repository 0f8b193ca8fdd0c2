-- Where hazards and photos will live. Created now so counts and foreign keys have a home;
-- the hazard event log, field registers and blob staging come with their features.

CREATE TABLE hazards (
    id             BYTEA    PRIMARY KEY,
    cell_id        BIGINT NOT NULL REFERENCES grid_cells(id),
    device_id      TEXT    NOT NULL,
    user_id        BIGINT NOT NULL REFERENCES users(id),
    category       TEXT    NOT NULL,
    severity       TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    reported_at_ms BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL
);
CREATE INDEX hazards_cell_status ON hazards(cell_id, status);

CREATE TABLE blobs (
    sha256       BYTEA    PRIMARY KEY,
    size         BIGINT NOT NULL,
    stored_at_ms BIGINT NOT NULL
);
