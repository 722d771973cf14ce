-- wrk script for bench/api.py: POST the JSON bodies of GUARD_BENCH_BODIES (one per line) in
-- turn, with GUARD_BENCH_AUTH as the Authorization header when set; print one JSON line.
local bodies = {}
for line in io.lines(os.getenv("GUARD_BENCH_BODIES")) do
  bodies[#bodies + 1] = line
end
local auth = os.getenv("GUARD_BENCH_AUTH")
local next_body = 0

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

function init(args)
  -- threads start at different bodies, so concurrent requests carry different texts
  next_body = math.random(#bodies) - 1
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"socket_errors":%d,"status_errors":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
