-- Escalations of overdue hazards this device's user is a manager above, as pulled.
CREATE TABLE escalations (
    hazard_id       BLOB    NOT NULL,
    deadline_ms     INTEGER NOT NULL,
    level           INTEGER NOT NULL,
    to_cell         TEXT    NOT NULL,
    escalated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (hazard_id, deadline_ms, level)
);
