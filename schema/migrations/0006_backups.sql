-- SDAP backups: one row per backup run. Holds the run's progress (so a run
-- cut short by CPU or time limits resumes where it stopped), its lease (one
-- runner at a time) and its outcome (last success or failure, duration),
-- which /ready reports. The backup itself lives in object storage.

CREATE TABLE backup_runs (
    -- YYYYMMDDTHHMMSSZ: the UTC start, also the folder in the bucket.
    backup_id   text PRIMARY KEY CHECK (backup_id ~ '^[0-9]{8}T[0-9]{6}Z(-[a-z0-9]+)?$'),
    started_at  timestamptz NOT NULL,
    status      text NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    -- Index into the export's table order, and the key of the last row
    -- exported from that table (NULL: from its start).
    table_index integer NOT NULL DEFAULT 0,
    cursor      text,
    -- Manifest entries of the chunks uploaded and read back so far.
    chunks      jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(chunks) = 'array'),
    -- A runner holds the run until then; an expired lease lets the next
    -- scheduled run resume it.
    lease_until timestamptz,
    finished_at timestamptz,
    duration_ms bigint,
    -- Public-safe reason of a failure.
    error       text,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX backup_runs_running ON backup_runs (backup_id) WHERE status = 'running';
CREATE INDEX backup_runs_finished ON backup_runs (status, finished_at DESC);

ALTER TABLE backup_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE backup_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY backup_runs_system ON backup_runs
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');

GRANT SELECT, INSERT, UPDATE, DELETE ON backup_runs TO memshadow_app;
