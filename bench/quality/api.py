"""A small client of the MEMSHADOW API for the quality harness: dev tokens
(the stack's `mint-token`), batch ingest, waiting until every row is
embedded, and retrieve in each mode. Standard library only; one kept-alive
connection per thread.
"""

import http.client
import json
import subprocess
import threading
import time
import urllib.parse

BATCH = 100  # the API's max_batch_items


class ApiError(Exception):
    pass


class Api:
    def __init__(self, base_url, mint_token, keys_dir):
        u = urllib.parse.urlparse(base_url)
        self.host, self.port = u.hostname, u.port or 80
        self.mint_token = mint_token
        self.keys_dir = keys_dir
        self._local = threading.local()
        self._tokens = {}
        self._paging_in_body = False

    def token(self, user):
        if user not in self._tokens:
            out = subprocess.run(
                [self.mint_token, "token", "--keys", self.keys_dir, "--sub", user, "--ttl", "86400"],
                check=True,
                capture_output=True,
                text=True,
            )
            self._tokens[user] = out.stdout.strip()
        return self._tokens[user]

    def _conn(self):
        c = getattr(self._local, "conn", None)
        if c is None:
            c = http.client.HTTPConnection(self.host, self.port, timeout=600)
            self._local.conn = c
        return c

    def request(self, method, path, user=None, body=None, ok=(200,)):
        """Returns (status, headers, parsed body). Retries a dropped
        connection and 503 a few times: a long run must not die of one."""
        headers = {"content-type": "application/json"}
        if user:
            headers["authorization"] = f"Bearer {self.token(user)}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(6):
            try:
                c = self._conn()
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                raw = r.read()
            except (ConnectionError, http.client.HTTPException, TimeoutError, OSError):
                self._local.conn = None
                time.sleep(1 + attempt)
                continue
            if r.status == 503 and attempt < 5:
                time.sleep(float(r.getheader("retry-after") or 1))
                continue
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            if r.status not in ok:
                raise ApiError(f"{method} {path}: {r.status} {str(parsed)[:300]}")
            return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed
        raise ApiError(f"{method} {path}: no answer after retries")

    def ingest(self, user, docs):
        """Stores `docs` (datasets.Doc) in batches; returns the memory id of
        each, in order. A duplicate (already stored by an earlier run) gives
        the existing id, so a run can resume on the same users."""
        ids = []
        for start in range(0, len(docs), BATCH):
            chunk = docs[start : start + BATCH]
            items = [{"content": d.content, "metadata": d.metadata} for d in chunk]
            _, _, out = self.request("POST", "/api/v1/memory/batch", user, {"items": items})
            for r in out["results"]:
                if r["status"] in (200, 201, 202):
                    ids.append(r["memory"]["id"])
                elif r["status"] == 409 and r["error"].get("existing_id"):
                    ids.append(r["error"]["existing_id"])
                else:
                    raise ApiError(f"ingest item {start + r['index']}: {r}")
        return ids

    def list_all(self, user):
        """Every live memory of the user (list API, newest first)."""
        rows = []
        cursor = None
        while True:
            q = "/api/v1/memory?limit=100" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            _, _, out = self.request("GET", q, user)
            rows += out["memories"]
            cursor = out.get("next_cursor")
            if not cursor:
                return rows

    def statuses(self, user):
        """embedding_status counts over all of the user's memories."""
        counts = {}
        for m in self.list_all(user):
            counts[m["embedding_status"]] = counts.get(m["embedding_status"], 0) + 1
        return counts

    def _totals(self, users):
        total = {}
        for u in users:
            for k, v in self.statuses(u).items():
                total[k] = total.get(k, 0) + v
        return total

    def delete_all(self, user):
        self.request("DELETE", "/api/v1/memory", user)

    def run_scheduled(self):
        """Runs the Worker's scheduled job once (wrangler dev's trigger)."""
        self.request("GET", "/__scheduled?cron=*%2F5+*+*+*+*")

    def wait_embedded(self, users, log, poll_s=5.0, drive=True):
        """Blocks until no memory of `users` is pending. With `drive`, starts
        the scheduled job again as soon as a run ends, instead of waiting for
        the stack's timer. One driver is enough: one run drains at a time
        (the job's drain lease) with several batches in flight, and a run
        started beside it leaves the embedding to it. Fails on `failed`
        rows."""
        stop = threading.Event()

        def driver():
            while not stop.is_set():
                try:
                    self.run_scheduled()
                except ApiError as e:
                    log(f"scheduled run failed: {e}")
                # A run that found the lease taken returns at once.
                stop.wait(1.0)

        threads = [threading.Thread(target=driver, daemon=True) for _ in range(1 if drive else 0)]
        for t in threads:
            t.start()
        started = time.time()
        try:
            while True:
                header = [self.pending_embeddings(u) for u in users]
                if None not in header:
                    pending = sum(header)
                    log(f"embedding: {pending} pending (x-pending-embeddings) after {time.time() - started:.0f}s")
                    if pending == 0:
                        # Confirm with the list: none may have failed.
                        total = self._totals(users)
                        if total.get("failed"):
                            raise ApiError(f"{total['failed']} memories failed to embed")
                        return time.time() - started
                else:
                    total = self._totals(users)
                    log(f"embedding: {total} after {time.time() - started:.0f}s")
                    if total.get("failed"):
                        raise ApiError(f"{total['failed']} memories failed to embed")
                    if total.get("pending", 0) == 0:
                        return time.time() - started
                time.sleep(poll_s)
        finally:
            stop.set()
            for t in threads:
                t.join()

    def retrieve(self, user, query, limit, mode=None, offset=0):
        """Memory ids best first, and the mode the API says it used.

        Speaks both retrieve contracts: the current one (limit and offset as
        query parameters, a JSON array back, the mode in `x-retrieval-mode`)
        and the earlier one (paging in the body, `{"results", "mode"}`)."""
        body = {"query": query}
        if mode is not None:
            body["mode"] = mode
        if self._paging_in_body:
            body |= {"limit": limit, "offset": offset}
            path = "/api/v1/memory/retrieve"
        else:
            path = f"/api/v1/memory/retrieve?limit={limit}&offset={offset}"
        _, headers, out = self.request("POST", path, user, body)
        if isinstance(out, dict):
            if not self._paging_in_body:
                self._paging_in_body = True  # the earlier contract: ask again
                return self.retrieve(user, query, limit, mode, offset)
            return [r["id"] for r in out["results"]], out.get("mode")
        return [r["id"] for r in out], headers.get("x-retrieval-mode")

    def pending_embeddings(self, user):
        """The user's memories still waiting for an embedding, from the
        `x-pending-embeddings` header of a text-mode retrieve, or None when
        the API does not send it."""
        if self._paging_in_body:
            return None
        try:
            _, headers, _ = self.request("POST", "/api/v1/memory/retrieve?limit=1", user, {"query": "pending", "mode": "text"})
        except ApiError:
            return None
        value = headers.get("x-pending-embeddings")
        return int(value) if value is not None else None

    def embed(self, pool_url, texts, model):
        """Vectors straight from the embedding pool (for EXPLAIN)."""
        u = urllib.parse.urlparse(pool_url)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        c.request(
            "POST",
            "/v1/embeddings",
            body=json.dumps({"input": texts, "model": model}),
            headers={"content-type": "application/json"},
        )
        out = json.loads(c.getresponse().read())
        return [d["embedding"] for d in out["data"]]
