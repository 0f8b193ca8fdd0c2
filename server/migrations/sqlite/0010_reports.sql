-- Reports and ledgers: a checkpoint may override the cadence its grid level implies, and
-- ledgers read a subtree's check-ins by cell and device time.
ALTER TABLE checkpoints ADD COLUMN cadence TEXT;
CREATE INDEX check_ins_cell_time ON check_ins(cell_id, device_time_ms);
