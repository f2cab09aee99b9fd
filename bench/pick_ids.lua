-- wrk script for bench/load.py: GET a random path from the file given after `--`, one path a line,
-- and print a one-line JSON summary (latencies in microseconds) that load.py parses.

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

local paths = {}

function init(args)
  -- Each wrk thread has its own Lua state, so each reads the file and seeds its own generator.
  math.randomseed(os.time() + thread_number * 7919)
  for line in io.lines(args[1]) do
    if line ~= "" then
      paths[#paths + 1] = line
    end
  end
  wrk.headers["Accept"] = "application/fhir+json"
  -- The smart-mode read benchmark passes its access token in the environment, not on the command line.
  local token = os.getenv("BENCH_BEARER")
  if token ~= nil and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %.1f, "p99_us": %.1f, "errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
