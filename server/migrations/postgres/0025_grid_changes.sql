-- The change log's grid entries (cells and checkpoints) on their own, so that the position of the
-- last one is one index step. Every grid edit logs one in the transaction that makes it, so that
-- position moves exactly when an edit commits, whoever commits it (this node, another node, a
-- `patrolsync admin` command). The server keeps the checkpoints ingest looks up in memory and
-- reads this position at most every second; a new one makes it read them again
-- (server/src/store/sql/checkpoint_cache.rs).
CREATE INDEX changes_grid ON changes (seq) WHERE kind IN ('cell', 'checkpoint');
