-- Checklist templates: every published version, never changed (check-ins name the version they
-- answered). The payload is the wire form (ChecklistTemplate).
CREATE TABLE templates (
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (id, version)
);
