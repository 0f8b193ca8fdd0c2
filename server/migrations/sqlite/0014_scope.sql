-- Scope as state. Each row says that an audience (`user:ID`, or `agency:NAME`) holds a target
-- (a cell subtree by its path, or a hazard by its change-log key) from the change-log position
-- of its grant on, until the position of its revoke. Entries of the change log are visible to
-- an audience at their own position; what came before a grant reaches its devices as the
-- grant's backfill. Grant and revoke entries are themselves in the change log, addressed to
-- their audience alone (changes.audience).
CREATE TABLE scope_grants (
    id            INTEGER PRIMARY KEY,
    audience      TEXT    NOT NULL,
    target_kind   TEXT    NOT NULL,
    target        TEXT    NOT NULL,
    granted_seq   INTEGER NOT NULL,
    revoked_seq   INTEGER,
    revoke_reason TEXT
);
CREATE INDEX scope_grants_audience ON scope_grants(audience, target_kind, target);
ALTER TABLE changes ADD COLUMN audience TEXT;

-- What devices held before scope was state: every assignment since the start of the log, and
-- every hazard an agency holds since the start (its devices had it through replayed entries,
-- which nobody is sent any more).
INSERT INTO scope_grants (audience, target_kind, target, granted_seq)
SELECT 'user:' || a.user_id, 'path', c.path, 0
FROM assignments a JOIN grid_cells c ON c.id = a.cell_id JOIN users u ON u.id = a.user_id
WHERE u.role <> 'agency' AND c.retired_at IS NULL;
INSERT INTO scope_grants (audience, target_kind, target, granted_seq)
SELECT 'agency:' || agency, 'hazard', 'hazard:' || lower(substr(hex(id), 1, 8) || '-' || substr(hex(id), 9, 4) || '-' || substr(hex(id), 13, 4) || '-' || substr(hex(id), 17, 4) || '-' || substr(hex(id), 21, 12)), 0
FROM hazards WHERE agency IS NOT NULL;
