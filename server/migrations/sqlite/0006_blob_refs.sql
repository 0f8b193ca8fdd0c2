-- Which records reference which photos. A reference whose hash is not in blobs is a missing
-- photo; it links by itself when the photo arrives. Also what a device may download: photos
-- referenced by records in its cells.
CREATE TABLE blob_refs (
    sha256      BLOB    NOT NULL,
    record_kind TEXT    NOT NULL,
    record_id   BLOB    NOT NULL,
    cell_id     INTEGER NOT NULL,
    device_id   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (sha256, record_kind, record_id)
);
CREATE INDEX blob_refs_device ON blob_refs(device_id);
