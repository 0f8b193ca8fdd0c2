-- Whether the user is on duty (在岗), and the device's latest fix while they are: sent with
-- each Hello while on duty, cleared when they go off duty (and never kept while off).
CREATE TABLE duty (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    on_duty     INTEGER NOT NULL DEFAULT 0,
    position    BLOB
);
INSERT INTO duty (id, on_duty) VALUES (1, 0);
