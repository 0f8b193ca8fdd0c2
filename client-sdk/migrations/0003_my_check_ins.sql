-- The device's own check-ins, with whether the server has them, for the app's history view.
CREATE TABLE my_check_ins (
    id             BLOB    PRIMARY KEY,
    checkpoint     TEXT    NOT NULL,
    outcome        TEXT    NOT NULL,
    device_time_ms INTEGER NOT NULL,
    note           TEXT    NOT NULL,
    state          TEXT    NOT NULL
);
CREATE INDEX my_check_ins_time ON my_check_ins(device_time_ms);

-- Merge events name the hazard they merge into, so a hazard can show the duplicates merged
-- into it with all their evidence.
ALTER TABLE hazard_ops ADD COLUMN merge_into BLOB;
CREATE INDEX hazard_ops_merge_into ON hazard_ops(merge_into);
