-- Domain duplicates: double taps on check-ins, and hazards reported near an open one of the
-- same category (linked as possible duplicates for a manager to merge).
ALTER TABLE check_ins ADD COLUMN duplicate_of BLOB;
ALTER TABLE hazards ADD COLUMN latitude REAL;
ALTER TABLE hazards ADD COLUMN longitude REAL;
ALTER TABLE hazards ADD COLUMN checkpoint TEXT;
ALTER TABLE hazards ADD COLUMN possible_duplicate_of BLOB;
CREATE INDEX hazards_duplicate_of ON hazards(duplicate_of);
