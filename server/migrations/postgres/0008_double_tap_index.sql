-- The double-tap check looks for the same user's earliest check-in at the same checkpoint within
-- the window before each new one. This index answers it with one short range scan in the order
-- the query asks for (device time, then id), so no planner picks a table scan, whatever its
-- statistics say about a table that grew since it last looked (the benchmark found PostgreSQL
-- scanning the table per new check-in, and SQLite walking every later check-in there).
CREATE INDEX check_ins_user_checkpoint_time ON check_ins(user_id, checkpoint_id, device_time_ms, id);
