-- Photos the device holds until the server confirms them: copied into the state dir (so the app
-- may delete its own copy), uploaded after the records that reference them, resumed from the
-- server's offset, deleted only once the server has verified the hash.
CREATE TABLE photos (
    sha256      BLOB    PRIMARY KEY,
    size        INTEGER NOT NULL,
    added_at_ms INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    bytes_sent  INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
