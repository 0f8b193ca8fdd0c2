-- The must-visit register (六必访): households of the six groups in a cell, kept only as far as
-- the visits need (address, group, whom to ask for). A visit check-in names the household it
-- visited.
CREATE TABLE households (
    id            INTEGER PRIMARY KEY,
    code          TEXT    NOT NULL UNIQUE,
    cell_id       INTEGER NOT NULL REFERENCES grid_cells(id),
    address       TEXT    NOT NULL,
    grp           TEXT    NOT NULL,
    contact_name  TEXT    NOT NULL,
    contact_phone TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX households_by_cell ON households (cell_id);

ALTER TABLE check_ins ADD COLUMN household_id INTEGER REFERENCES households(id);
CREATE INDEX check_ins_household_time ON check_ins (household_id, device_time_ms)
    WHERE household_id IS NOT NULL;

-- When a household was taken off the register (its contact and address are cleared then; the
-- code, cell and group stay for the visits already made).
ALTER TABLE households ADD COLUMN removed_at INTEGER;
