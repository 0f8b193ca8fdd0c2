-- Which records reference which photos. A reference whose hash is not in blobs is a missing
-- photo; it links by itself when the photo arrives. Also what a device may download: photos
-- referenced by records in its cells.
CREATE TABLE blob_refs (
    sha256      BYTEA    NOT NULL,
    record_kind TEXT    NOT NULL,
    record_id   BYTEA    NOT NULL,
    cell_id     BIGINT NOT NULL,
    device_id   TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (sha256, record_kind, record_id)
);
CREATE INDEX blob_refs_device ON blob_refs(device_id);
