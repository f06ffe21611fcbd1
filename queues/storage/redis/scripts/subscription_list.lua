-- subscription_list: live subscriptions of a queue in creation order (ties
-- by id), after the marker (an id of this queue's index).
-- KEYS: index (1-3). ARGV: now, marker ("" = from the start), limit,
--       subscription key prefix
-- Reads each listed subscription's info hash.
-- Returns {{id, field, value, ...}, ...}; {} for a marker not in the index.
local now, marker, limit, prefix = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]),
                                   ARGV[4]
local I = index_keys(1)
local start = 0
if marker ~= '' then
  local rank = redis.call('ZRANK', I.subscriptions, marker)
  if not rank then
    return {}
  end
  start = rank + 1
end
local out = {}
while #out < limit do
  local ids = redis.call('ZRANGE', I.subscriptions, start, start + limit - #out - 1)
  if #ids == 0 then
    break
  end
  start = start + #ids
  for _, id in ipairs(ids) do
    local s, fields = load_subscription(sub_keys(prefix, id))
    if is_live(s, now) then
      out[#out + 1] = {id, unpack(fields)}
    end
  end
end
return out
