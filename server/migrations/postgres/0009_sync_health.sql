-- Sync health: what each device last did and how it went, and a short history of what it
-- reported at Hello, so admins can see what is stuck, on which device, since when.

ALTER TABLE devices ADD COLUMN last_pull_at  BIGINT;
ALTER TABLE devices ADD COLUMN rejected_ops  BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN conflicts     BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN last_problem_at BIGINT;
ALTER TABLE devices ADD COLUMN last_error_at BIGINT;
ALTER TABLE devices ADD COLUMN last_error    TEXT;
ALTER TABLE devices ADD COLUMN bytes_in      BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN bytes_out     BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN rtt_ms        BIGINT;

-- One row per Hello, the newest few kept per device.
CREATE TABLE device_reports (
    device_id             TEXT    NOT NULL,
    at_ms                 BIGINT  NOT NULL,
    outbox_depth          BIGINT  NOT NULL,
    oldest_pending_age_ms BIGINT  NOT NULL,
    pending_photo_bytes   BIGINT  NOT NULL,
    clock_offset_ms       BIGINT  NOT NULL,
    rtt_ms                BIGINT,
    PRIMARY KEY (device_id, at_ms)
);

-- The conflict log is the op results whose transition lost; list them without a table scan.
CREATE INDEX op_results_conflicts ON op_results(recorded_at) WHERE outcome = 'conflict';
CREATE INDEX rejections_recorded ON rejections(recorded_at);
