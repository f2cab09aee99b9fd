-- wrk script for bench/search.py: GET the paths of the file given after `--` (one a line) in turn, cycling,
-- with `Prefer: handling=strict` so that a search parameter the server does not support is an error (400)
-- rather than silently ignored; print the same one-line JSON summary as pick_ids.lua.

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

local paths = {}
local next_index = 0

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      paths[#paths + 1] = line
    end
  end
  -- Threads (if more than one) start at different places of the same cycle.
  next_index = ((thread_number - 1) * 7919) % #paths
  wrk.headers["Accept"] = "application/fhir+json"
  wrk.headers["Prefer"] = "handling=strict"
end

function request()
  next_index = next_index % #paths + 1
  return wrk.format("GET", paths[next_index])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %.1f, "p99_us": %.1f, "errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
