-- wrk script: send the primed session cookies round-robin, one request each, and print the
-- exact totals and latency percentiles as one JSON line at the end.
-- Usage: wrk ... -s bench/cookies.lua URL -- COOKIE_FILE   (one "name=value" a line; may be empty)

local requests = {}
local next_index = 0

function init(args)
  local path = args[1]
  if path then
    for line in io.lines(path) do
      if #line > 0 then
        requests[#requests + 1] = wrk.format(nil, nil, { ["Cookie"] = line })
      end
    end
  end
  if #requests == 0 then
    requests[1] = wrk.format()
  end
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, '
      .. '"p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
