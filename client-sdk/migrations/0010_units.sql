-- The key units of the device's cells (重点单位), as pulled: the wire record, by code, with its
-- cell so a revoked cell drops its units.
CREATE TABLE units (
    code    TEXT PRIMARY KEY,
    cell    TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX units_by_cell ON units (cell);
