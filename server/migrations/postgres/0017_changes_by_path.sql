-- A feed's backfill reads the change log under one cell path: by a range on the path (every
-- path ends in '/'), not by scanning the log once per granted cell. Byte order ("C"), so a
-- range is exactly a prefix whatever the database's collation.
CREATE INDEX IF NOT EXISTS changes_by_path ON changes (cell_path COLLATE "C");
