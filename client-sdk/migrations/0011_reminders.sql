-- Reminders (督促) of hazards a routing rule sent this device's user, as pulled.
CREATE TABLE reminders (
    hazard_id      BLOB    NOT NULL,
    deadline_ms    INTEGER NOT NULL,
    offset_ms      INTEGER NOT NULL,
    party          TEXT    NOT NULL,
    reminded_at_ms INTEGER NOT NULL,
    PRIMARY KEY (hazard_id, deadline_ms, offset_ms)
);

-- A server of pull protocol 4 sent a device of protocol 3 its feed without the hazards routed to
-- a party; the cursor moved past them. Forgetting the feed makes the next pull a reset: the
-- device drops what it holds (never its outbox) and walks its feed again, routed hazards and
-- their reminders included.
UPDATE pull_state SET feed = '';
