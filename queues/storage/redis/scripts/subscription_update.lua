-- subscription_update: change the subscriber, ttl and/or options of a live
-- subscription of this queue. A new ttl restarts expiry from now.
-- KEYS: index (1-3), outbox (4-8), the subscription (9-13)
-- ARGV: now, project, queue, id, set subscriber (0/1), subscriber,
--       ttl ("" = keep), expires, options JSON ("" = keep), options digest,
--       subscription key prefix
-- Returns 1, 0 (not found) or -1 (another live subscription of the queue
-- has that subscriber and options digest; nothing changed). An expired one
-- is dropped.
local now, id = tonumber(ARGV[1]), ARGV[4]
local I, O, S = index_keys(1), outbox_keys(4), sub_keys_at(9)
local s = load_subscription(S)
if not is_live(s, now) or s.project ~= ARGV[2] or s.queue ~= ARGV[3] then
  return 0
end

local subscriber, digest = s.subscriber, s.digest or ''
if ARGV[5] == '1' then
  subscriber = ARGV[6]
end
if ARGV[9] ~= '' then
  digest = ARGV[10]
end
local old = subscriber_field(s.subscriber, s.digest or '')
local field = subscriber_field(subscriber, digest)
if field ~= old then
  local other = redis.call('HGET', I.subscribers, field)
  if other and other ~= id then
    local H = sub_keys(ARGV[11], other)
    if is_live(load_subscription(H), now) then
      return -1
    end
    drop_subscription(O, I, H, other)
  end
  if redis.call('HGET', I.subscribers, old) == id then
    redis.call('HDEL', I.subscribers, old)
  end
  redis.call('HSET', I.subscribers, field, id)
  redis.call('HSET', S.info, 'subscriber', subscriber, 'digest', digest)
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
