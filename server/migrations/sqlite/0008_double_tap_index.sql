-- The double-tap check looks for the same user's earlier check-in at the same checkpoint within
-- the window: an index that leads with the user keeps that a short range scan however many
-- check-ins a checkpoint gathers (the benchmark found it scanning every later check-in there).
CREATE INDEX check_ins_user_checkpoint_time ON check_ins(user_id, checkpoint_id, device_time_ms);
