-- Agencies (police station, fire brigade): which one a user belongs to, which one holds a
-- hazard, and change-log entries meant for it. When a hazard is transferred, its earlier log is
-- replayed into the change log for that agency (replay = TRUE), so the agency's devices can fold
-- it; everyone else skips replays.

ALTER TABLE users ADD COLUMN agency TEXT;
ALTER TABLE changes ADD COLUMN agency TEXT;
ALTER TABLE changes ADD COLUMN replay BOOLEAN NOT NULL DEFAULT FALSE;
