-- Checklist templates: every published version, never changed (check-ins name the version they
-- answered). The payload is the wire form (ChecklistTemplate).
CREATE TABLE templates (
    id           TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    name         TEXT    NOT NULL,
    payload      BYTEA   NOT NULL,
    published_at BIGINT  NOT NULL,
    PRIMARY KEY (id, version)
);
