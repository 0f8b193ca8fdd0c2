-- Key material every node of a cluster must share (the CAs devices trust and chain to, the
-- address-validation token key, the admin token). Written once by whichever node starts first.
CREATE TABLE cluster_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
);
