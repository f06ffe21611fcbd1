-- subscription_purge: drop every subscription of the queue with its jobs.
-- KEYS: index (1-3), outbox (4-8). ARGV: subscription key prefix
-- Touches each subscription's keys.
local I, O = index_keys(1), outbox_keys(4)
for _, id in ipairs(redis.call('ZRANGE', I.subscriptions, 0, -1)) do
  drop_subscription(O, I, sub_keys(ARGV[1], id), id)
end
redis.call('UNLINK', I.subscriptions, I.subscribers, I.targets)
return 1
