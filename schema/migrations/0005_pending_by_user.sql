-- Counts a user's memories still waiting for an embedding on every
-- retrieve (the x-pending-embeddings header) without scanning the user's
-- whole table: the index holds pending rows only, so it stays small.
CREATE INDEX memories_pending_user ON memories (user_id) WHERE embedding_status = 'pending';
