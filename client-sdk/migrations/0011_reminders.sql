-- Reminders (督促) of hazards a routing rule sent this device's user, as pulled.
CREATE TABLE reminders (
    hazard_id      BLOB    NOT NULL,
    deadline_ms    INTEGER NOT NULL,
    offset_ms      INTEGER NOT NULL,
    party          TEXT    NOT NULL,
    reminded_at_ms INTEGER NOT NULL,
    PRIMARY KEY (hazard_id, deadline_ms, offset_ms)
);
