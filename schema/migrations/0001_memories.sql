-- Memories: one row per stored text, owned by one user, with its embedding.
-- Row-level security keys on transaction-local settings that the API's Sql
-- adapters set before every statement: app.user_id (a user's requests) or
-- app.system = 'on' (scheduled jobs). FORCE makes it apply to the table
-- owner too; only superusers and BYPASSRLS roles escape it.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE memories (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL,
    content          text NOT NULL,
    -- sha256(content) as lowercase hex: the dedupe key per user.
    content_hash     text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    tags             text[] NOT NULL DEFAULT '{}',
    -- all-MiniLM-L6-v2: 384 dimensions. NULL while pending.
    embedding        vector(384),
    -- The model that produced `embedding`: a model change re-embeds in the
    -- background instead of mixing incomparable vectors.
    embedding_model  text,
    embedding_status text NOT NULL DEFAULT 'pending'
                     CHECK (embedding_status IN ('pending', 'ready', 'failed')),
    embed_attempts   integer NOT NULL DEFAULT 0,
    -- When the scheduled job may (re)try embedding; also its claim lease.
    next_embed_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    accessed_at      timestamptz,
    access_count     bigint NOT NULL DEFAULT 0,
    expires_at       timestamptz,
    content_tsv      tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    CONSTRAINT memories_user_content_hash_key UNIQUE (user_id, content_hash),
    CONSTRAINT memories_ready_has_vector CHECK (embedding_status <> 'ready' OR embedding IS NOT NULL)
);

-- Approximate nearest neighbours by cosine distance.
CREATE INDEX memories_embedding_hnsw ON memories USING hnsw (embedding vector_cosine_ops);
-- metadata @> filter, full-text search, tags @> filter.
CREATE INDEX memories_metadata_gin ON memories USING gin (metadata jsonb_path_ops);
CREATE INDEX memories_content_tsv_gin ON memories USING gin (content_tsv);
CREATE INDEX memories_tags_gin ON memories USING gin (tags);
-- Keyset pagination, newest first.
CREATE INDEX memories_user_created ON memories (user_id, created_at DESC, id DESC);
-- The scheduled job's work queues.
CREATE INDEX memories_pending ON memories (next_embed_at, id) WHERE embedding_status = 'pending';
CREATE INDEX memories_expires ON memories (expires_at) WHERE expires_at IS NOT NULL;

ALTER TABLE memories ENABLE ROW LEVEL SECURITY;
ALTER TABLE memories FORCE ROW LEVEL SECURITY;

-- NULLIF: an unset setting reads as '' (missing_ok), which must match nothing.
CREATE POLICY memories_owner ON memories
    USING (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('app.user_id', true), '')::uuid);

CREATE POLICY memories_system ON memories
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');

GRANT SELECT, INSERT, UPDATE, DELETE ON memories TO memshadow_app;
