-- Tasks (dispatch): help calls (弱势群体监护), inspections, fix checks and visits for a place in
-- a cell, offered to the cell's on-duty patrollers nearest first. The row is the task's folded
-- state; its log (hash-chained like a hazard's) is task_log.
CREATE TABLE tasks (
    id              BYTEA    PRIMARY KEY,
    cell_id         BIGINT NOT NULL REFERENCES grid_cells(id),
    kind            TEXT    NOT NULL,
    urgency         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    household       TEXT,
    unit            TEXT,
    checkpoint      TEXT,
    latitude        DOUBLE PRECISION,
    longitude       DOUBLE PRECISION,
    description     TEXT    NOT NULL,
    assignee        TEXT,
    offered_to      TEXT,
    offered_at_ms   BIGINT,
    result          TEXT,
    hazard_id       BYTEA,
    check_in_id     BYTEA,
    conflicts       BIGINT NOT NULL DEFAULT 0,
    created_at_ms   BIGINT NOT NULL,
    accepted_at_ms  BIGINT,
    arrived_at_ms   BIGINT,
    completed_at_ms BIGINT,
    escalated_at_ms BIGINT,
    updated_at_ms   BIGINT NOT NULL,
    log_len         BIGINT NOT NULL DEFAULT 0,
    chain_head      BYTEA
);
CREATE INDEX tasks_by_status ON tasks (status);
CREATE INDEX tasks_by_cell ON tasks (cell_id);

CREATE TABLE task_log (
    task_id        BYTEA    NOT NULL REFERENCES tasks(id),
    position       BIGINT NOT NULL,
    kind           TEXT    NOT NULL,
    entry_id       BYTEA    NOT NULL,
    device_id      TEXT    NOT NULL,
    user_id        BIGINT,
    role           TEXT    NOT NULL,
    hlc_wall_ms    BIGINT NOT NULL,
    hlc_logical    BIGINT NOT NULL,
    payload        BYTEA    NOT NULL,
    received_at_ms BIGINT NOT NULL,
    hash           BYTEA    NOT NULL,
    PRIMARY KEY (task_id, position)
);
CREATE UNIQUE INDEX task_log_entry ON task_log (kind, entry_id);
