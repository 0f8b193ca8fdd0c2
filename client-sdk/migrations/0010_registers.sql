-- The key units of the device's cells (重点单位), as pulled: the wire record, by code, with its
-- cell so a revoked cell drops its units.
CREATE TABLE units (
    code    TEXT PRIMARY KEY,
    cell    TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX units_by_cell ON units (cell);

-- The must-visit households (六必访) of the device's cells, as pulled; only users assigned
-- their cells receive them.
CREATE TABLE households (
    code    TEXT PRIMARY KEY,
    cell    TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX households_by_cell ON households (cell);

-- Each cell's boundary (GeoJSON geometry text), to draw the map the dashboard draws.
ALTER TABLE cells ADD COLUMN boundary TEXT;

-- A device that pulled before this version skipped the registers' entries (it did not know
-- them) and moved its cursor past them, and holds its cells without their boundaries: forget
-- the feed, so its next pull is answered with a reset and it walks the log again once.
UPDATE pull_state SET feed = '';
