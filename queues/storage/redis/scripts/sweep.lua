-- sweep: reclaim the memory of expired messages and claims of one queue,
-- and bodies left without a record.
-- KEYS: queue (1-10). ARGV: now, budget.
-- Returns 1 when the budget ran out and more may be waiting.
local now = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])

-- A post stores its bodies in the MULTI/EXEC just before its script
-- (post.lua), so a script that failed there (e.g. NOSCRIPT, and its retry
-- never came) leaves bodies without a record. Found by count (two HLENs),
-- reclaimed one HSCAN page per call; the scan's cursor is kept in the info
-- hash between calls.
local function reclaim_orphan_bodies()
  if redis.call('HLEN', Q.bodies) <= redis.call('HLEN', Q.records) then
    return false  -- (a stale cursor left by a scan cut short is harmless)
  end
  local cursor = redis.call('HGET', Q.info, 'orphan_scan') or '0'
  local page = redis.call('HSCAN', Q.bodies, cursor, 'COUNT', int_text(budget))
  local orphans, fields = {}, page[2]
  for i = 1, #fields, 2 do
    if redis.call('HEXISTS', Q.records, fields[i]) == 0 then
      orphans[#orphans + 1] = fields[i]
    end
  end
  call_chunked('HDEL', Q.bodies, orphans)
  if page[1] == '0' then
    redis.call('HDEL', Q.info, 'orphan_scan')
    return false
  end
  redis.call('HSET', Q.info, 'orphan_scan', page[1])
  return true
end

local more = reap(Q, now, budget)
promote(Q, now, budget)
more = reclaim_orphan_bodies() or more
if more then
  return 1
end
return 0
