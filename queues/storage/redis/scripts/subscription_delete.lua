-- subscription_delete: drop a subscription of this queue (live or expired)
-- with its jobs, dead letters, breaker and delivery log. Idempotent.
-- KEYS: index (1-3), outbox (4-8), the subscription (9-13)
-- ARGV: project, queue, id
local s = load_subscription(sub_keys_at(9))
if s == nil or s.project ~= ARGV[1] or s.queue ~= ARGV[2] then
  return 0
end
drop_subscription(outbox_keys(4), index_keys(1), sub_keys_at(9), ARGV[3])
return 1
