-- wrk script of the fleet bench (bench/wrk.py): POST one fixed JSON body, over and over.
--   VIGIE_BENCH_BODY   file holding the body (read once, at start)
--   VIGIE_BENCH_TOKEN  bearer token, sent as Authorization when set (not for the baseline)
-- No Idempotency-Key: each request would be a replay of the first one.
-- done() prints one line "VIGIE_BENCH_JSON {...}" that bench/wrk.py parses; latencies in us.

local body_file = os.getenv("VIGIE_BENCH_BODY")
local f = assert(io.open(body_file, "rb"), "cannot read VIGIE_BENCH_BODY " .. tostring(body_file))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
local token = os.getenv("VIGIE_BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'VIGIE_BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
