-- Observer: GET .../messages?limit=10&echo=true and follow the marker of the
-- "next" link, like a client paging through a queue. No include_claimed
-- (Zaqar 23's Redis driver answers include_claimed=true without a marker
-- with 503); echo=true so the bench's own messages are listed.
--
-- With -t1 all connections share this Lua state, which keeps a pool of
-- cursors: each response with messages puts its next marker back in the
-- pool; request() takes one (or starts a new cursor at the head of the queue
-- when the pool is empty, e.g. at the start or when a cursor reached the end).
package.path = os.getenv("BENCH_SCRIPTS") .. "/?.lua;" .. package.path
local common = require("common")
common.setup("GET", nil)

local base = "/v2/queues/" .. (os.getenv("BENCH_QUEUE") or "bench")
  .. "/messages?limit=10&echo=true"
local cursors, n = {}, 0
pages, listed, restarts, bad = 0, 0, 0, 0

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function request()
  if n > 0 then
    local marker = cursors[n]
    cursors[n] = nil
    n = n - 1
    return wrk.format("GET", base .. "&marker=" .. marker)
  end
  restarts = restarts + 1
  return wrk.format("GET", base)
end

function response(status, headers, body)
  if status ~= 200 then
    if status ~= 204 then bad = bad + 1 end
    return
  end
  -- Plain finds (no patterns): this runs in wrk's one thread for every
  -- ~10 KB page, and wrk's CPU comes out of the server's two cores.
  local count, at = 0, 1
  while true do
    at = body:find('"age":', at, true)
    if not at then break end
    count = count + 1
    at = at + 6
  end
  pages = pages + 1
  listed = listed + count
  if count > 0 then
    local m = body:find("marker=", 1, true)
    if m then
      local stop = body:find('["&]', m + 7)
      n = n + 1
      cursors[n] = body:sub(m + 7, (stop or 0) - 1)
    end
  end
end

function done(summary, latency, requests)
  local t = {pages = 0, listed = 0, restarts = 0, bad = 0}
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  io.write(string.format("BENCH pages=%d listed=%d restarts=%d bad=%d duration_us=%d\n",
    t.pages, t.listed, t.restarts, t.bad, summary.duration))
end
