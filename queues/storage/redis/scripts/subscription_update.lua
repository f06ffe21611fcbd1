-- subscription_update: change the subscriber, ttl and/or options of a live
-- subscription of this queue. A new ttl restarts expiry from now.
-- KEYS: index (1-3), outbox (4-8), the subscription (9-13)
-- ARGV: now, project, queue, id, set subscriber (0/1), subscriber,
--       ttl ("" = keep), expires, options JSON ("" = keep),
--       subscription key prefix
-- Returns 1, 0 (not found) or -1 (another live subscription of the queue
-- has that subscriber; nothing changed). An expired one is dropped.
local now, id = tonumber(ARGV[1]), ARGV[4]
local I, O, S = index_keys(1), outbox_keys(4), sub_keys_at(9)
local s = load_subscription(S)
if not is_live(s, now) or s.project ~= ARGV[2] or s.queue ~= ARGV[3] then
  return 0
end

local subscriber = ARGV[6]
if ARGV[5] == '1' and subscriber ~= s.subscriber then
  local other = redis.call('HGET', I.subscribers, subscriber)
  if other then
    local H = sub_keys(ARGV[10], other)
    if is_live(load_subscription(H), now) then
      return -1
    end
    drop_subscription(O, I, H, other)
  end
  if redis.call('HGET', I.subscribers, s.subscriber) == id then
    redis.call('HDEL', I.subscribers, s.subscriber)
  end
  redis.call('HSET', I.subscribers, subscriber, id)
  redis.call('HSET', S.info, 'subscriber', subscriber)
end
if ARGV[7] ~= '' then
  redis.call('HSET', S.info, 'ttl', ARGV[7], 'expires', ARGV[8])
  redis.call('ZADD', O.expiry, ARGV[8], id)
  if s.disabled ~= '1' then
    redis.call('ZADD', I.targets, ARGV[8], id)
  end
end
if ARGV[9] ~= '' then
  redis.call('HSET', S.info, 'options', ARGV[9])
end
return 1
