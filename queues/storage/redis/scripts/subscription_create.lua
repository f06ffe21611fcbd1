-- subscription_create: create a subscription unless one with the same
-- subscriber URI and options digest is in the queue, creating the queue if
-- missing.
-- KEYS: queue (1-10), project (11-13), index (14-16), outbox (17-21),
--       the new subscription (22-26)
-- ARGV: now, queue name, registry member, project, new id, subscriber, ttl,
--       expires, options JSON, secret, subscription key prefix, options digest
-- Returns {"created"}, {"conflict"} (a live confirmed one holds the pair) or
-- {"existing", id, field, value, ...} (a live unconfirmed one, unchanged).
-- An expired holder of the pair is dropped (with its jobs) first.
local now = tonumber(ARGV[1])
local I, O, S = index_keys(14), outbox_keys(17), sub_keys_at(22)
local id, subscriber, expires, digest = ARGV[5], ARGV[6], ARGV[8], ARGV[12]
local field = subscriber_field(subscriber, digest)
ensure_queue(Q, ARGV[2], ARGV[3], now)

local holder = redis.call('HGET', I.subscribers, field)
if holder then
  local H = sub_keys(ARGV[11], holder)
  local s, fields = load_subscription(H)
  if is_live(s, now) then
    if s.confirmed == '1' then
      return {'conflict'}
    end
    return {'existing', holder, unpack(fields)}
  end
  drop_subscription(O, I, H, holder)
end

redis.call('HSET', S.info, 'project', ARGV[4], 'queue', ARGV[2],
           'subscriber', subscriber, 'ttl', ARGV[7], 'created', ARGV[1],
           'expires', expires, 'options', ARGV[9], 'confirmed', '0',
           'secret', ARGV[10], 'disabled', '0', 'digest', digest)
redis.call('ZADD', I.subscriptions, now, id)
redis.call('HSET', I.subscribers, field, id)
redis.call('ZADD', I.targets, expires, id)
redis.call('ZADD', O.expiry, expires, id)
return {'created'}
