-- Named admin accounts, each with a role and optionally a subtree, and a token kept only as
-- its SHA-256. The data dir's admin.token is the bootstrap owner and is not in this table.
CREATE TABLE admins (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    role         TEXT    NOT NULL,
    cell         TEXT,
    token_sha256 BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    created_by   TEXT    NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER
);

-- Every admin action, appended with who, when, from where, what and how it ended; each entry's
-- hash covers the one before it, so the log can be checked whole.
CREATE TABLE audit_log (
    seq     INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    source  TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    outcome TEXT    NOT NULL,
    hash    BLOB NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log(actor, seq);
