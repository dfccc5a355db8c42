-- The memories policies again call current_setting directly (0003 had
-- wrapped it in a sub-SELECT).
--
-- Measured (bench/scale, 100,000 memories, 90,000 of them one user's):
-- with `user_id = (SELECT …)` the planner cannot know whose rows a
-- statement reads. An initplan's value is unknown when the plan is made,
-- so the policy's condition gets a default selectivity (1/ndistinct of
-- user_id, ORed with the system policy's 0.005), on top of the
-- statement's own `user_id = $1`: the heavy user's 90,000 rows were
-- estimated at 540, the HNSW index looked pointless, and every vector
-- search of that user was an exact scan (548 ms, the same as a sequential
-- scan; it grows with the user's rows). A bare current_setting() is a
-- stable expression the estimator evaluates while planning, so the
-- planner sees the user, reads its share from the statistics, and picks
-- HNSW for large users and the user's index for small ones.
--
-- What 0003 wanted from the sub-SELECT, one evaluation per statement,
-- holds where it matters: as an index condition a stable expression is
-- computed once per scan; only as a per-row filter (on the few rows an
-- index returns) is it evaluated again, a GUC lookup each.

DROP POLICY memories_owner ON memories;
DROP POLICY memories_system ON memories;
CREATE POLICY memories_owner ON memories
    USING (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid);
CREATE POLICY memories_system ON memories
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');
