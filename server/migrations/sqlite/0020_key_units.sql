-- The key-unit register (重点单位户籍化管理): each unit in a cell, the people to call, its risk
-- level, its last four-capabilities self-assessment, and the checkpoints at it (its inspections
-- are the check-ins there, its hazards those reported there).
CREATE TABLE key_units (
    id                 INTEGER PRIMARY KEY,
    code               TEXT    NOT NULL UNIQUE,
    cell_id            INTEGER NOT NULL REFERENCES grid_cells(id),
    kind               TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    address            TEXT    NOT NULL,
    responsible_person TEXT    NOT NULL,
    responsible_phone  TEXT    NOT NULL,
    risk               TEXT    NOT NULL,
    self_check_date    TEXT,
    created_at         INTEGER NOT NULL
);
CREATE INDEX key_units_by_cell ON key_units (cell_id);

CREATE TABLE key_unit_checkpoints (
    unit_id       INTEGER NOT NULL REFERENCES key_units(id),
    checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),
    PRIMARY KEY (unit_id, checkpoint_id)
);
CREATE INDEX key_unit_checkpoints_by_checkpoint ON key_unit_checkpoints (checkpoint_id);

-- A unit's hazards are those reported at its checkpoints.
CREATE INDEX hazards_by_checkpoint ON hazards (checkpoint);
