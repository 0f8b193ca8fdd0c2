-- What a refused op's field named and the rule's bound, so the device is answered in its own
-- language (from the reason, the field and these) on a replay as on the first push, and an
-- admin reads the refusal in theirs.
ALTER TABLE op_results ADD COLUMN value TEXT;
ALTER TABLE op_results ADD COLUMN bound BIGINT;
ALTER TABLE rejections ADD COLUMN value TEXT;
ALTER TABLE rejections ADD COLUMN bound BIGINT;
