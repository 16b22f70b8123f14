-- wrk script: single-record publishes, each with its own Idempotency-Key.
-- Reads SIMPUL_KEY and SIMPUL_DATASET from the environment.
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
  path = "/api/v1/bus/datasets/" .. os.getenv("SIMPUL_DATASET") .. "/records"
end

function request()
  counter = counter + 1
  local nik = string.format("321401%02d0590%04d", 1 + math.floor(counter / 10000) % 28, counter % 10000)
  local body = string.format(
    '{"nik":"%s","nama":"Warga Uji %d","tanggal_lahir":"1990-05-15","jenis_kelamin":"L","kode_wilayah":"32.14.01.1001"}\n',
    nik, counter)
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/x-ndjson",
    ["Authorization"] = "Bearer " .. key,
    ["Idempotency-Key"] = string.format("bench-%d-%d", id, counter),
  }, body)
end

function response(status, headers, body)
  if status ~= 200 then
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local failures = 0
  for _, thread in ipairs(threads) do
    failures = failures + thread:get("failed")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT requests=%d failed=%d seconds=%.2f rps=%.0f p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
    summary.requests, failures, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
