-- Whether the server said this device is revoked (or no longer recognises it): set by a sync or
-- the engine on hearing it, cleared only by enrolling again. The last error is overwritten by
-- every later attempt (an offline one, say); this is not.
ALTER TABLE sync_state ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;
