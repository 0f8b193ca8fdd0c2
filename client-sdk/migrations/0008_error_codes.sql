-- Errors as stable codes with their parameters (ErrorCode::code and the values of its params, in
-- order), beside the English text kept for the command line and for rows from before.
ALTER TABLE sync_state ADD COLUMN last_error_code TEXT;
ALTER TABLE sync_state ADD COLUMN last_error_p1 TEXT;
ALTER TABLE sync_state ADD COLUMN last_error_p2 TEXT;
ALTER TABLE photos ADD COLUMN error_code TEXT;
ALTER TABLE photos ADD COLUMN error_p1 TEXT;
ALTER TABLE photos ADD COLUMN error_p2 TEXT;
