-- subscription_reap: drop one subscription if it has expired (the sweeper's
-- step; its project and queue were read first, to name the index keys).
-- KEYS: index (1-3), outbox (4-8), the subscription (9-13)
-- ARGV: now, id, project and queue the index keys were built from
-- Returns 1 if it was dropped.
local O, S, id = outbox_keys(4), sub_keys_at(9), ARGV[2]
local s = load_subscription(S)
if s == nil then
  redis.call('ZREM', O.expiry, id)
  return 0
end
if is_live(s, tonumber(ARGV[1])) or s.project ~= ARGV[3] or s.queue ~= ARGV[4] then
  return 0
end
drop_subscription(O, index_keys(1), S, id)
return 1
