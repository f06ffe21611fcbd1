-- job_lease: take up to `limit` due jobs whose lease is free or expired,
-- oldest due first (ties in creation order), each with a new lease token and
-- one more attempt.
-- KEYS: outbox (1-5)
-- ARGV: now, limit, lease seconds, max in flight per subscription,
--       token nonce (24 hex digits), subscription key prefix
-- Touches the info, due and leased keys of each subscription in
-- jobs:pending. Returns {job reply, ...} (see outbox.lua job_reply).
--
-- Only subscriptions with pending jobs are visited, one at a time: one
-- whose breaker is open, or that holds max_in_flight live leases, costs a
-- few O(1) commands however long its backlog. A deleted, expired or disabled
-- one leaves the pending set for good (its jobs are never leased again).
local O = outbox_keys(1)
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local expires, cap = now + tonumber(ARGV[3]), tonumber(ARGV[4])
local nonce, prefix = ARGV[5], ARGV[6]

-- Jobs of leases that ended go back to `due`, keeping their due time.
local function recover(S)
  local ended = redis.call('ZRANGEBYSCORE', S.leased, '-inf', now)
  for _, id in ipairs(ended) do
    local j = load_job(O, id)
    if j then
      redis.call('ZADD', S.due, j[JOB.due], id)
    end
  end
  call_chunked('ZREM', S.leased, ended)
end

-- 'gone' (never leasable again), 'closed' (breaker open) or 'open'.
local function state(S, sid)
  local s = redis.call('HMGET', S.info, 'expires', 'disabled')
  if not s[1] or tonumber(s[1]) <= now or s[2] == '1' then
    return 'gone'
  end
  if redis.call('ZSCORE', O.breakers, sid) then
    return 'closed'
  end
  return 'open'
end

-- Append {due, id, keys} for the subscription's oldest due jobs, up to its room.
local function gather(candidates, S, sid)
  recover(S)
  local in_flight = redis.call('ZCARD', S.leased)
  local room = math.min(limit, cap - in_flight)
  if room <= 0 then
    return
  end
  local due = redis.call('ZRANGEBYSCORE', S.due, '-inf', now, 'WITHSCORES',
                         'LIMIT', 0, room)
  for i = 1, #due, 2 do
    candidates[#candidates + 1] = {tonumber(due[i + 1]), due[i], S}
  end
  if #due == 0 and in_flight == 0 then
    drop_if_idle(O, S, sid)
  end
end

if limit <= 0 or cap <= 0 then
  return {}
end
redis.call('ZREMRANGEBYSCORE', O.breakers, '-inf', now)
local candidates = {}
for _, sid in ipairs(redis.call('SMEMBERS', O.pending)) do
  local S = sub_keys(prefix, sid)
  local st = state(S, sid)
  if st == 'gone' then
    redis.call('SREM', O.pending, sid)
  elseif st == 'open' then
    gather(candidates, S, sid)
  end
end
table.sort(candidates, function(a, b)
  if a[1] ~= b[1] then
    return a[1] < b[1]
  end
  return a[2] < b[2]
end)

local reply = {}
for i = 1, math.min(limit, #candidates) do
  local id, S = candidates[i][2], candidates[i][3]
  local j = load_job(O, id)
  redis.call('ZREM', S.due, id)
  if j then  -- (a record is never missing unless the data was damaged)
    j[JOB.attempts] = j[JOB.attempts] + 1
    j[JOB.token] = nonce .. string.format('%08x', i)
    j[JOB.lease_expires] = expires
    save_job(O, id, j)
    redis.call('ZADD', S.leased, expires, id)
    reply[#reply + 1] = job_reply(id, j)
  end
end
return reply
