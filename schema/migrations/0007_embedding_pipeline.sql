-- The embedding pipeline's bookkeeping (issue 9).
--
-- 1. Failed rows are revived on a schedule: a row that ran out of attempts
--    keeps `next_embed_at` as the time it gets another round, and the job
--    finds those rows through their own partial index. Rows that failed
--    before this migration are revived at once.
-- 2. embedding_job_state remembers facts the job would otherwise rediscover
--    by scanning the table, such as "every ready row carries model X"
--    (key 'settled_model'), so the stale-model re-queue runs only while a
--    model change is in progress.

CREATE INDEX memories_failed_due ON memories (next_embed_at, id) WHERE embedding_status = 'failed';

UPDATE memories SET next_embed_at = now()
WHERE embedding_status = 'failed' AND next_embed_at IS NULL;

CREATE TABLE embedding_job_state (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE embedding_job_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE embedding_job_state FORCE ROW LEVEL SECURITY;

CREATE POLICY embedding_job_state_system ON embedding_job_state
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');

GRANT SELECT, INSERT, UPDATE ON embedding_job_state TO memshadow_app;
