-- Counts of the tables that grow with use (check-ins, double taps, hazards, refusals, photos),
-- kept as their rows are written, so admin stats, /metrics, the dashboard and the fleet sampler
-- read a handful of rows instead of counting tables of millions. Spread over shards so that
-- concurrent writers (PostgreSQL's group-commit writers) do not queue on one row; a count is
-- the sum over the shards. Started from the tables as they are.
CREATE TABLE store_counts (
    shard        INTEGER PRIMARY KEY,
    check_ins    BIGINT  NOT NULL DEFAULT 0,
    double_taps  BIGINT  NOT NULL DEFAULT 0,
    hazards      BIGINT  NOT NULL DEFAULT 0,
    rejected_ops BIGINT  NOT NULL DEFAULT 0,
    blobs        BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO store_counts (shard, check_ins, double_taps, hazards, rejected_ops, blobs) VALUES (
    0,
    (SELECT COUNT(*) FROM check_ins),
    (SELECT COUNT(*) FROM check_ins WHERE duplicate_of IS NOT NULL),
    (SELECT COUNT(*) FROM hazards),
    (SELECT COUNT(*) FROM rejections),
    (SELECT COUNT(*) FROM blobs)
);

-- Photos some record references that the server did not hold when the reference was written:
-- a row per photo, removed when it is stored. Missing photos (in all and per device) are read
-- from here instead of joining every reference to every photo. A reference and its photo
-- written at once on PostgreSQL can leave a row whose photo is stored; readers skip those.
CREATE TABLE missing_blobs (
    sha256 BYTEA PRIMARY KEY
);
INSERT INTO missing_blobs (sha256)
    SELECT DISTINCT r.sha256 FROM blob_refs r
    WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = r.sha256);
