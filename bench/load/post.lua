-- wrk script of the load benchmark: POSTs one JSON body per request,
-- {"$BENCH_FIELD": text$BENCH_EXTRA}, cycling through the texts in
-- $BENCH_BODIES (one JSON string per line): a retrieve's question ("query")
-- or an ingested memory ("content"); $BENCH_EXTRA adds members (`,"mode":
-- "vector"`). Each text carries a tag unique to the run, thread and
-- request, so no embedding cache can answer it and no ingest is a
-- duplicate: every request embeds. The tag is one word of letters and
-- digits: separate numbers would be words of their own that the full-text
-- branch searches for (the generated memories end in "(copy N)").
--
-- $BENCH_PATH: the path; $BENCH_HEADERS: a file of "name: value" headers,
-- one per user (the bearer token, or the peer's x-user), taken in turn;
-- $BENCH_TAG: unique per run.
-- $BENCH_MODE: the retrieve mode asked for (ours only); an answer in another
-- mode (`x-retrieval-mode: text` when the query could not be embedded in
-- time) counts as degraded.
-- done() prints one JSON line with the counts and latency percentiles (µs).

local questions = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do
  questions[#questions + 1] = line:sub(2, -2) -- drop the JSON string's quotes
end
local path = os.getenv("BENCH_PATH")
-- One "name: value" header per user; each request goes to the next user.
local users = {}
for line in io.lines(os.getenv("BENCH_HEADERS")) do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  users[#users + 1] = { name = name, value = value }
end
local tag = os.getenv("BENCH_TAG") or "0"
local field = os.getenv("BENCH_FIELD") or "query"
local extra = os.getenv("BENCH_EXTRA") or ""

local expected_mode = os.getenv("BENCH_MODE") or ""

local next_thread = 0
local threads = {}
function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_id", next_thread)
  threads[#threads + 1] = thread
end

degraded = 0
function response(status, headers, body)
  local mode = headers["x-retrieval-mode"] or headers["X-Retrieval-Mode"]
  if expected_mode ~= "" and status == 200 and mode ~= expected_mode then
    degraded = degraded + 1
  end
end

local sent = 0
function request()
  sent = sent + 1
  local q = questions[(sent * 7 + (thread_id or 0) * 131) % #questions + 1]
  local body = string.format('{"%s":"%s %st%dn%d"%s}', field, q, tag, thread_id or 0, sent, extra)
  local user = users[(sent + (thread_id or 0) * 7919) % #users + 1]
  local headers = { ["content-type"] = "application/json", [user.name] = user.value }
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  local answered_degraded = 0
  for _, thread in ipairs(threads) do
    answered_degraded = answered_degraded + (thread:get("degraded") or 0)
  end
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,"degraded":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, answered_degraded))
end
