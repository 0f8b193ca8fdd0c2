-- Reports and ledgers: a checkpoint may override the cadence its grid level implies, and
-- ledgers read a subtree's check-ins by cell and device time. Imported cells keep their
-- boundary (GeoJSON geometry text).
ALTER TABLE checkpoints ADD COLUMN cadence TEXT;
ALTER TABLE grid_cells ADD COLUMN boundary TEXT;
-- When a checkpoint was first created (NULL: before this column existed): compliance does not
-- count slots that ended before it.
ALTER TABLE checkpoints ADD COLUMN created_at INTEGER;
CREATE INDEX check_ins_cell_time ON check_ins(cell_id, device_time_ms);
-- The device's clock offset (device − server, ms) as its last Hello measured it when the
-- check-in arrived: what the clock-skew flag judges, fixed once stored.
ALTER TABLE check_ins ADD COLUMN clock_offset_ms INTEGER;
