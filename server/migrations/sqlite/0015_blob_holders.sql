-- Devices that proved they hold a photo by uploading all of its bytes themselves (verified
-- against its hash): they may download it. Referencing a hash proves nothing.
CREATE TABLE blob_holders (
    sha256      BLOB NOT NULL,
    device_id   TEXT NOT NULL,
    proved_at   INTEGER NOT NULL,
    PRIMARY KEY (sha256, device_id)
);
