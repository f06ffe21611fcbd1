-- subscription_disable: stop deliveries (the subscriber answered 410). Its
-- jobs stay but are never leased again; posts write no more.
-- KEYS: the subscription (1-5), index of its queue (6-8), outbox (9-13)
-- ARGV: id, project and queue the index keys were built from.
-- Returns 1, or 0 when the subscription does not exist (or is not of that
-- queue: then the caller read a stale record).
local S, I, O = sub_keys_at(1), index_keys(6), outbox_keys(9)
local s = load_subscription(S)
if s == nil or s.project ~= ARGV[2] or s.queue ~= ARGV[3] then
  return 0
end
redis.call('HSET', S.info, 'disabled', '1')
redis.call('ZREM', I.targets, ARGV[1])
redis.call('SREM', O.pending, ARGV[1])
return 1
