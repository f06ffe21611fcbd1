-- POST 1 x 1 KB, unsigned and signed interleaved in time (bench/interleaved.py).
--
-- Time from BENCH_AB_T0 (CLOCK_MONOTONIC, as the runner reads it) is cut into
-- phases of BENCH_AB_PERIOD seconds, in U S S U blocks (ABBA). A request is of
-- the kind of the phase it is sent in: unsigned (account headers, queue
-- BENCH_QUEUE) or signed (Authorization: Signed BENCH_CREDENTIAL, no account
-- headers, queue BENCH_SIGNED_QUEUE). A response counts for its phase only
-- once the phase is BENCH_AB_GUARD seconds old: by then every request sent in
-- the phase before has been answered, so each phase's count is of one kind.
-- Phases before 0 are the warm-up.
--
-- done() prints "BENCH_AB ok=<n0,n1,...> bad=<...>", per phase 0..BENCH_AB_PHASES-1.
package.path = os.getenv("BENCH_SCRIPTS") .. "/?.lua;" .. package.path
local common = require("common")
local clock = require("clock")

local t0 = tonumber(os.getenv("BENCH_AB_T0"))
local period = tonumber(os.getenv("BENCH_AB_PERIOD"))
local guard = tonumber(os.getenv("BENCH_AB_GUARD"))
local phases = tonumber(os.getenv("BENCH_AB_PHASES"))
local body = '{"messages": [' .. common.message(1) .. ']}'

common.setup("POST", body)
local unsigned = wrk.format("POST", "/v2/queues/" .. os.getenv("BENCH_QUEUE") .. "/messages")
wrk.headers["Client-ID"] = nil
wrk.headers["X-Project-ID"] = nil
wrk.headers["Authorization"] = "Signed " .. os.getenv("BENCH_CREDENTIAL")
local signed = wrk.format("POST", "/v2/queues/" .. os.getenv("BENCH_SIGNED_QUEUE") .. "/messages")

-- ABBA: phase p is signed when p % 4 is 1 or 2.
local function is_signed(p)
  local r = p % 4
  return r == 1 or r == 2
end

-- Per-phase counts (globals: done() runs in another Lua state and reads
-- them through thread:get).
ok, bad = {}, {}
for p = 0, phases - 1 do ok[p], bad[p] = 0, 0 end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function request()
  local p = math.floor((clock.now() - t0) / period)
  if is_signed(p) then return signed end
  return unsigned
end

function response(status, headers, body)
  local since = clock.now() - t0
  local p = math.floor(since / period)
  if p < 0 or p >= phases or since - p * period < guard then return end
  if status >= 200 and status < 300 then ok[p] = ok[p] + 1 else bad[p] = bad[p] + 1 end
end

function done(summary, latency, requests)
  local oks, bads = {}, {}
  for p = 0, phases - 1 do oks[p + 1], bads[p + 1] = 0, 0 end
  for _, thread in ipairs(threads) do
    local t_ok, t_bad = thread:get("ok"), thread:get("bad")
    for p = 0, phases - 1 do
      oks[p + 1] = oks[p + 1] + t_ok[p]
      bads[p + 1] = bads[p + 1] + t_bad[p]
    end
  end
  io.write("BENCH_AB ok=" .. table.concat(oks, ",") .. " bad=" .. table.concat(bads, ",") .. "\n")
end
