-- When a grid cell was first created (NULL: before this column existed), so a report as of an
-- earlier moment leaves out cells imported after it.
ALTER TABLE grid_cells ADD COLUMN created_at BIGINT;
