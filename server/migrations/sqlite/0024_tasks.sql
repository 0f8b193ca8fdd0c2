-- Tasks (dispatch): help calls (弱势群体监护), inspections, fix checks and visits for a place in
-- a cell, offered to the cell's on-duty patrollers nearest first. The row is the task's folded
-- state; its log (hash-chained like a hazard's) is task_log.
CREATE TABLE tasks (
    id              BLOB    PRIMARY KEY,
    cell_id         INTEGER NOT NULL REFERENCES grid_cells(id),
    kind            TEXT    NOT NULL,
    urgency         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    household       TEXT,
    unit            TEXT,
    checkpoint      TEXT,
    latitude        REAL,
    longitude       REAL,
    description     TEXT    NOT NULL,
    assignee        TEXT,
    offered_to      TEXT,
    offered_at_ms   INTEGER,
    result          TEXT,
    hazard_id       BLOB,
    check_in_id     BLOB,
    conflicts       INTEGER NOT NULL DEFAULT 0,
    created_at_ms   INTEGER NOT NULL,
    accepted_at_ms  INTEGER,
    arrived_at_ms   INTEGER,
    completed_at_ms INTEGER,
    escalated_at_ms INTEGER,
    updated_at_ms   INTEGER NOT NULL,
    log_len         INTEGER NOT NULL DEFAULT 0,
    chain_head      BLOB
);
CREATE INDEX tasks_by_status ON tasks (status);
CREATE INDEX tasks_by_cell ON tasks (cell_id);

CREATE TABLE task_log (
    task_id        BLOB    NOT NULL REFERENCES tasks(id),
    position       INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    entry_id       BLOB    NOT NULL,
    device_id      TEXT    NOT NULL,
    user_id        INTEGER,
    role           TEXT    NOT NULL,
    hlc_wall_ms    INTEGER NOT NULL,
    hlc_logical    INTEGER NOT NULL,
    payload        BLOB    NOT NULL,
    received_at_ms INTEGER NOT NULL,
    hash           BLOB    NOT NULL,
    PRIMARY KEY (task_id, position)
);
CREATE UNIQUE INDEX task_log_entry ON task_log (kind, entry_id);
