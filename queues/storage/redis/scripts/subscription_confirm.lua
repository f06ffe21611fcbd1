-- subscription_confirm: set the confirmed flag of a live subscription of
-- this queue.
-- KEYS: the subscription (1-5). ARGV: now, project, queue, confirmed (0/1)
-- Returns 1, or 0 when not found.
local s = load_subscription(sub_keys_at(1))
if not is_live(s, tonumber(ARGV[1])) or s.project ~= ARGV[2]
    or s.queue ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], 'confirmed', ARGV[4])
return 1
