-- Routing rules (隐患直报): every published version of the rule set, never changed; the latest
-- is in force. `rules` is the set as JSON (server/src/routing.rs), cells resolved to paths.
CREATE TABLE routing_rules (
    version      INTEGER PRIMARY KEY,
    rules        TEXT    NOT NULL,
    published_at INTEGER NOT NULL
);

-- Whom a rule sent a hazard to when its report arrived: the party's feed (`user:ID`,
-- `agency:NAME`), its name as people read it, and the rule (`VERSION#INDEX`). Never changed.
ALTER TABLE hazards ADD COLUMN routed_to TEXT;
ALTER TABLE hazards ADD COLUMN routed_party TEXT;
ALTER TABLE hazards ADD COLUMN routed_rule TEXT;
CREATE INDEX hazards_routed ON hazards (routed_to) WHERE routed_to IS NOT NULL;

-- Reminders (督促) to the routed party: one row per hazard, deadline and point, written once
-- (the primary key makes two nodes reminding at the same moment agree on a single row).
CREATE TABLE hazard_reminders (
    hazard_id      BLOB    NOT NULL,
    deadline_ms    INTEGER NOT NULL,
    offset_ms      INTEGER NOT NULL,
    party          TEXT    NOT NULL,
    reminded_at_ms INTEGER NOT NULL,
    PRIMARY KEY (hazard_id, deadline_ms, offset_ms)
);

-- The account of a key unit's responsible person, for rules that route to it (`unit = true`).
ALTER TABLE key_units ADD COLUMN responsible_user TEXT;
