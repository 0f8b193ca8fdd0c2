-- Where a pull that stopped inside a backfill (what entered the device's scope at a grant,
-- sent whole before it) goes on from; 0 when the last page did not stop inside one.
ALTER TABLE pull_state ADD COLUMN backfill_after INTEGER NOT NULL DEFAULT 0;
-- The scope feed the cursor belongs to, as the server named it. A device from before feeds has
-- none: its first pull is answered with a reset, and it walks the log again once.
ALTER TABLE pull_state ADD COLUMN feed TEXT NOT NULL DEFAULT '';
