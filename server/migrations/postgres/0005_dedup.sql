-- Domain duplicates: double taps on check-ins, and hazards reported near an open one of the
-- same category (linked as possible duplicates for a manager to merge).
ALTER TABLE check_ins ADD COLUMN duplicate_of BYTEA;
ALTER TABLE hazards ADD COLUMN latitude DOUBLE PRECISION;
ALTER TABLE hazards ADD COLUMN longitude DOUBLE PRECISION;
ALTER TABLE hazards ADD COLUMN checkpoint TEXT;
ALTER TABLE hazards ADD COLUMN possible_duplicate_of BYTEA;
CREATE INDEX hazards_duplicate_of ON hazards(duplicate_of);
