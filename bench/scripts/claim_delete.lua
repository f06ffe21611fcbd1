-- Consumer: claim 10 (POST .../claims?limit=10), then DELETE every claimed
-- message with the href the claim returned (it carries ?claim_id=...).
--
-- With -t1 all connections share this Lua state: claim responses push their
-- hrefs onto one FIFO, and request() sends a pending DELETE if there is one,
-- a new claim otherwise. So about 1 claim per 10 deletes, each DELETE on its
-- own keep-alive request, as a real consumer would do without batching.
--
-- BENCH_REFILL=1 also POSTs one batch of 10 x 1 KB per successful claim, so
-- the queue depth stays constant (the flat-cost runs use this).
--
-- done() prints one "BENCH key=value ..." line the runner parses:
-- deleted (204 on DELETE), claimed (messages in claim responses), claims,
-- posts (refill batches), bad (other statuses), what was sent, and the
-- measured duration.
package.path = os.getenv("BENCH_SCRIPTS") .. "/?.lua;" .. package.path
local common = require("common")
common.setup("POST", nil)

local queue = os.getenv("BENCH_QUEUE") or "bench"
local refill = os.getenv("BENCH_REFILL") == "1"
local claim_path = "/v2/queues/" .. queue .. "/claims?limit=10"
local claim_body = '{"ttl": 300, "grace": 60}'
local post_path = "/v2/queues/" .. queue .. "/messages"
local post_body
if refill then
  local parts = {}
  for i = 1, 10 do parts[i] = common.message(i) end
  post_body = '{"messages": [' .. table.concat(parts, ", ") .. ']}'
end

local pending, head, tail = {}, 1, 0      -- FIFO of DELETE paths
local posts_due = 0
-- Counters (read by done() through thread:get).
deleted, claimed, claims, posts, bad = 0, 0, 0, 0, 0
deletes_sent, claims_sent = 0, 0

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function request()
  if posts_due > 0 then
    posts_due = posts_due - 1
    return wrk.format("POST", post_path, nil, post_body)
  end
  if head <= tail then
    local path = pending[head]
    pending[head] = nil
    head = head + 1
    deletes_sent = deletes_sent + 1
    return wrk.format("DELETE", path, nil, nil)
  end
  claims_sent = claims_sent + 1
  return wrk.format("POST", claim_path, nil, claim_body)
end

function response(status, headers, body)
  if status == 204 then
    -- A DELETE, or a claim that found nothing (the runner checks the queue
    -- never ran dry: its stats after the run still show free messages).
    deleted = deleted + 1
  elseif status == 201 then
    if body:find("claim_id=", 1, true) then
      claims = claims + 1
      for href in body:gmatch('"href"%s*:%s*"([^"]+)"') do
        tail = tail + 1
        pending[tail] = href
        claimed = claimed + 1
      end
      if refill then posts_due = posts_due + 1 end
    else
      posts = posts + 1
    end
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local t = {deleted = 0, claimed = 0, claims = 0, posts = 0, bad = 0,
             deletes_sent = 0, claims_sent = 0}
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  io.write(string.format(
    "BENCH deleted=%d claimed=%d claims=%d posts=%d bad=%d deletes_sent=%d claims_sent=%d duration_us=%d\n",
    t.deleted, t.claimed, t.claims, t.posts, t.bad, t.deletes_sent, t.claims_sent,
    summary.duration))
end
