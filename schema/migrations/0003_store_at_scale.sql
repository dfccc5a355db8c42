-- The memory store at scale (issue 10).
--
-- 1. Row-level security policies read their setting once per statement:
--    `(SELECT current_setting(...))` is an initplan, a constant for the
--    whole scan, where a bare call is evaluated again for every row.
-- 2. Access statistics move off the `memories` rows into an append-only
--    side table: a retrieve appends one narrow row per hit (no row locks,
--    no new `memories` row version, no HNSW or GIN insert), readers add the
--    pending hits to the folded counts, and the scheduled job folds them
--    into `memories.access_count` / `accessed_at` in batches.
-- 3. The GIN indexes serve queries under row-level security (see below).

-- 1. Policies, re-created with the setting as an initplan.
DROP POLICY memories_owner ON memories;
DROP POLICY memories_system ON memories;
CREATE POLICY memories_owner ON memories
    USING (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid))
    WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid));
CREATE POLICY memories_system ON memories
    USING ((SELECT current_setting('app.system', true)) = 'on')
    WITH CHECK ((SELECT current_setting('app.system', true)) = 'on');

DROP POLICY users_owner ON users;
DROP POLICY users_system ON users;
CREATE POLICY users_owner ON users
    USING (id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid))
    WITH CHECK (id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid));
CREATE POLICY users_system ON users
    USING ((SELECT current_setting('app.system', true)) = 'on')
    WITH CHECK ((SELECT current_setting('app.system', true)) = 'on');

DROP POLICY refresh_tokens_system ON refresh_tokens;
CREATE POLICY refresh_tokens_system ON refresh_tokens
    USING ((SELECT current_setting('app.system', true)) = 'on')
    WITH CHECK ((SELECT current_setting('app.system', true)) = 'on');

DROP POLICY webauthn_credentials_owner ON webauthn_credentials;
DROP POLICY webauthn_credentials_system ON webauthn_credentials;
CREATE POLICY webauthn_credentials_owner ON webauthn_credentials
    USING (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid))
    WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid));
CREATE POLICY webauthn_credentials_system ON webauthn_credentials
    USING ((SELECT current_setting('app.system', true)) = 'on')
    WITH CHECK ((SELECT current_setting('app.system', true)) = 'on');

DROP POLICY webauthn_challenges_system ON webauthn_challenges;
CREATE POLICY webauthn_challenges_system ON webauthn_challenges
    USING ((SELECT current_setting('app.system', true)) = 'on')
    WITH CHECK ((SELECT current_setting('app.system', true)) = 'on');

DROP POLICY login_throttle_system ON login_throttle;
CREATE POLICY login_throttle_system ON login_throttle
    USING ((SELECT current_setting('app.system', true)) = 'on')
    WITH CHECK ((SELECT current_setting('app.system', true)) = 'on');

DROP POLICY auth_telemetry_owner ON auth_telemetry;
DROP POLICY auth_telemetry_system ON auth_telemetry;
CREATE POLICY auth_telemetry_owner ON auth_telemetry
    USING (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid))
    WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid));
CREATE POLICY auth_telemetry_system ON auth_telemetry
    USING ((SELECT current_setting('app.system', true)) = 'on')
    WITH CHECK ((SELECT current_setting('app.system', true)) = 'on');

-- 2. Hits not yet folded into `memories`. No foreign key: checking one
-- would share-lock the memory row on every hit, which is what this table
-- exists to avoid. Rows of deleted memories are dropped by the next fold.
CREATE TABLE memory_access (
    memory_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    accessed_at timestamptz NOT NULL
);
-- Readers sum a memory's pending hits; the fold takes the oldest first.
CREATE INDEX memory_access_memory ON memory_access (memory_id);

ALTER TABLE memory_access ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_access FORCE ROW LEVEL SECURITY;
CREATE POLICY memory_access_owner ON memory_access
    USING (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid))
    WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.user_id', true), '')::uuid));
CREATE POLICY memory_access_system ON memory_access
    USING ((SELECT current_setting('app.system', true)) = 'on')
    WITH CHECK ((SELECT current_setting('app.system', true)) = 'on');

-- The API appends and reads hits; the fold (system scope) locks and
-- deletes them (FOR UPDATE needs the UPDATE privilege).
GRANT SELECT, INSERT, UPDATE, DELETE ON memory_access TO memshadow_app;

-- 3. Under row-level security the planner may use a query's condition as
-- an index condition only if its operator is LEAKPROOF (it must not run
-- before the policy otherwise). Full-text `@@` and jsonb `@>` are not
-- marked so, and every full-text match and metadata filter ran row by row
-- over all of a user's rows (EXPLAIN ANALYZE as memshadow_app: Seq Scan,
-- "Rows Removed by Filter: 30061"; as a superuser: Bitmap Index Scan on
-- memories_content_tsv_gin). Both functions compute a boolean from their
-- arguments without side effects and raise no error that depends on the
-- values (only resource errors: stack depth, memory). Marking them needs a
-- superuser; where the migration runs as another role (a managed Postgres)
-- the marks are skipped and the store still works, slower at scale.
-- pg_proc is per database, so this touches only this database.
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER FUNCTION pg_catalog.ts_match_vq(tsvector, tsquery) LEAKPROOF;
        ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) LEAKPROOF;
    ELSE
        RAISE NOTICE 'not a superuser: full-text and metadata filters stay unindexed under row-level security';
    END IF;
END
$$;
