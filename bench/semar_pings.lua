-- wrk script: GPS pings from the 120 units, round robin, each moving a few metres per ping.
-- Reads SIMPUL_KEY from the environment.
local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  failed = 0
  key = os.getenv("SIMPUL_KEY")
end

function request()
  counter = counter + 1
  local unit = (counter * 7 + id) % 120 + 1
  local lat = -6.55 + (counter % 1000) * 0.00001
  local lng = 107.44 + (unit % 40) * 0.002
  local body = string.format('{"lat":%.6f,"lng":%.6f}', lat, lng)
  return wrk.format("POST", string.format("/api/v1/semar/ambulances/SEMAR-%02d/location", unit), {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, body)
end

function response(status, headers, body)
  if status ~= 202 then
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local failures = 0
  for _, thread in ipairs(threads) do
    failures = failures + thread:get("failed")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT requests=%d failed=%d seconds=%.2f rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, failures, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
