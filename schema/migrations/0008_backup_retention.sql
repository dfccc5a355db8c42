-- SDAP backup retention: when a backup's objects were deleted from object
-- storage (and how many), so the run stays in the history (outcome, counts)
-- and retention never deletes it twice. Only rows finished as 'done' or
-- 'failed' are ever deleted, and only after a newer backup verified.

ALTER TABLE backup_runs
    ADD COLUMN deleted_at      timestamptz,
    ADD COLUMN deleted_objects integer CHECK (deleted_objects >= 0),
    ADD CONSTRAINT backup_runs_deleted_when_finished
        CHECK (deleted_at IS NULL OR status IN ('done', 'failed'));

-- Retention's candidates: finished runs whose objects still exist.
CREATE INDEX backup_runs_retained ON backup_runs (started_at DESC)
    WHERE deleted_at IS NULL AND status IN ('done', 'failed');
