-- Embeddings of any model's dimension (issue 11): a deployment picks its
-- model (MEMSHADOW_EMBEDDING_MODEL), and all-mpnet-base-v2's vectors have
-- 768 dimensions where all-MiniLM-L6-v2's have 384.
--
-- `embedding` becomes pgvector's unconstrained `vector`, so the column
-- holds every model's vectors and each row keeps the id of the model that
-- made it (`embedding_model`). An HNSW index needs one dimension, so each
-- known model's dimension gets its own: over the expression
-- `embedding::vector(N)`, partial on `vector_dims(embedding) = N`. The
-- retrieve statement repeats both expressions with its dimension as a
-- literal (repositories/retrieval.rs), which is what lets the planner use
-- the index; a parameter would not match the partial predicate in a
-- generic plan. Two models of one dimension share an index, and the
-- statement's `embedding_model = $8` keeps their vectors apart. A vector
-- of another dimension is stored and searched exactly, without an index.
--
-- Dropping the type modifier rewrites no rows (a binary-coercible change);
-- the 384 index is built anew: at a million memories about as long as the
-- first build (8 minutes on 2 cores, BENCHMARKS.md "Vector search at
-- scale").

DROP INDEX memories_embedding_hnsw;
ALTER TABLE memories ALTER COLUMN embedding TYPE vector;

CREATE INDEX memories_embedding_384_hnsw ON memories
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WHERE vector_dims(embedding) = 384;
CREATE INDEX memories_embedding_768_hnsw ON memories
    USING hnsw ((embedding::vector(768)) vector_cosine_ops)
    WHERE vector_dims(embedding) = 768;
