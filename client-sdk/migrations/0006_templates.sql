-- Checklist templates as pulled: every published version (a check-in names the one it used).
CREATE TABLE templates (
    id      TEXT    NOT NULL,
    version INTEGER NOT NULL,
    payload BLOB    NOT NULL,
    PRIMARY KEY (id, version)
);
