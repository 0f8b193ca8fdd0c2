-- Escalations of overdue hazards: one row per hazard, deadline and level, written once (the
-- primary key makes two nodes escalating at the same moment agree on a single row).
CREATE TABLE hazard_escalations (
    hazard_id       BLOB    NOT NULL,
    deadline_ms     INTEGER  NOT NULL,
    level           INTEGER NOT NULL,
    to_cell         TEXT    NOT NULL,
    escalated_at_ms INTEGER  NOT NULL,
    PRIMARY KEY (hazard_id, deadline_ms, level)
);
