"""The design documents' own stack, the load benchmark's peer: FastAPI +
asyncpg + pgvector + onnxruntime MiniLM in the same process.

- `POST /retrieve` embeds the query (onnxruntime, in a thread pool),
  searches the user's memories by cosine distance and updates the hits'
  access time and count inside the request, as the design documents do.
- `POST /memory` stores a memory and embeds it in a background task.

The user comes from the `x-user` header: the peer checks no token, which
only flatters it. Run by bench/load/run.py under uvicorn; the settings come
from the environment (PEER_DATABASE_URL, PEER_MODEL_DIR, PEER_MANIFEST,
PEER_THREADS).
"""

import asyncio
import os
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import asyncpg
from fastapi import BackgroundTasks, FastAPI, Header
from pydantic import BaseModel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "quality"))
from baselines import OnnxEmbedder  # noqa: E402

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS peer_memories (
    id           uuid PRIMARY KEY,
    user_id      text NOT NULL,
    content      text NOT NULL,
    embedding    vector(384),
    access_count bigint NOT NULL DEFAULT 0,
    accessed_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS peer_memories_hnsw ON peer_memories USING hnsw (embedding vector_cosine_ops);
CREATE INDEX IF NOT EXISTS peer_memories_user ON peer_memories (user_id);
"""

app = FastAPI()
embedder = None
threads = ThreadPoolExecutor(max_workers=int(os.environ.get("PEER_THREADS", "2")))


class RetrieveBody(BaseModel):
    query: str
    limit: int = 10


class MemoryBody(BaseModel):
    content: str


def pgvec(v):
    return "[" + ",".join(f"{x:.7g}" for x in v) + "]"


async def embed(text):
    vecs = await asyncio.get_running_loop().run_in_executor(threads, embedder._run, [text])
    return pgvec(vecs[0])


@app.on_event("startup")
async def startup():
    global embedder
    embedder = OnnxEmbedder(os.environ["PEER_MODEL_DIR"], os.environ["PEER_MANIFEST"], "/nonexistent")
    app.state.db = await asyncpg.create_pool(os.environ["PEER_DATABASE_URL"], min_size=2, max_size=20)
    async with app.state.db.acquire() as c:
        await c.execute(SCHEMA)


@app.post("/retrieve")
async def retrieve(body: RetrieveBody, x_user: str = Header()):
    vec = await embed(body.query)
    async with app.state.db.acquire() as c:
        rows = await c.fetch(
            "SELECT id, content, 1 - (embedding <=> $2::vector) AS score FROM peer_memories "
            "WHERE user_id = $1 AND embedding IS NOT NULL ORDER BY embedding <=> $2::vector LIMIT $3",
            x_user, vec, body.limit,
        )
        await c.execute(
            "UPDATE peer_memories SET access_count = access_count + 1, accessed_at = now() WHERE id = ANY($1)",
            [r["id"] for r in rows],
        )
    return [{"id": str(r["id"]), "content": r["content"], "score": r["score"]} for r in rows]


async def embed_memory(memory_id, content):
    vec = await embed(content)
    async with app.state.db.acquire() as c:
        await c.execute("UPDATE peer_memories SET embedding = $2::vector WHERE id = $1", memory_id, vec)


@app.post("/memory")
async def ingest(body: MemoryBody, background: BackgroundTasks, x_user: str = Header()):
    memory_id = uuid.uuid4()
    async with app.state.db.acquire() as c:
        await c.execute(
            "INSERT INTO peer_memories (id, user_id, content) VALUES ($1, $2, $3)", memory_id, x_user, body.content
        )
    background.add_task(embed_memory, memory_id, body.content)
    return {"id": str(memory_id)}
