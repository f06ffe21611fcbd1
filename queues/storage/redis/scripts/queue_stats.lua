-- queue_stats: counts of live messages and the oldest and newest one.
-- KEYS: queue (1-10). ARGV: now.
-- Returns {total, claimed, oldest, newest} (the last two only if total > 0).
local now = tonumber(ARGV[1])
reap(Q, now, 50)
local total = redis.call('ZCARD', Q.messages)
  - redis.call('ZCOUNT', Q.expiry, '-inf', now)
local claimed = redis.call('ZCOUNT', Q.inflight, '(' .. num(now), '+inf')
if total <= 0 then
  return {0, 0}
end

local function first_live(cmd)
  local offset = 0
  while true do
    local ids = redis.call(cmd, Q.messages, offset, offset + 99)
    if #ids == 0 then
      return nil
    end
    for _, id in ipairs(ids) do
      local m = load_message(Q, id)
      if m and m.expires > now then
        return m
      end
    end
    offset = offset + #ids
  end
end

local oldest, newest = first_live('ZRANGE'), first_live('ZREVRANGE')
if oldest == nil or newest == nil then
  return {total, claimed}
end
local ends = message_replies(Q, {oldest, newest})
return {total, claimed, ends[1], ends[2]}
