-- The devices whose users are on duty (在岗), with the latest fix each sent while on duty: one
-- row per device at most, written by each Hello on duty, deleted by the first Hello off duty.
CREATE TABLE device_duty (
    device_id   TEXT    PRIMARY KEY REFERENCES devices(id),
    latitude    DOUBLE PRECISION,
    longitude   DOUBLE PRECISION,
    accuracy_m  DOUBLE PRECISION,
    fix_time_ms BIGINT,
    updated_at  BIGINT NOT NULL
);
