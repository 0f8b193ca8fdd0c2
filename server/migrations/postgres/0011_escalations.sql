-- Escalations of overdue hazards: one row per hazard, deadline and level, written once (the
-- primary key makes two nodes escalating at the same moment agree on a single row).
CREATE TABLE hazard_escalations (
    hazard_id       BYTEA   NOT NULL,
    deadline_ms     BIGINT  NOT NULL,
    level           BIGINT  NOT NULL,
    to_cell         TEXT    NOT NULL,
    escalated_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (hazard_id, deadline_ms, level)
);
