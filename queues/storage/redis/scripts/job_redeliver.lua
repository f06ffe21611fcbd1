-- job_redeliver: queue a new job for (subscription, message), due now.
-- KEYS: outbox (1-5), the subscription (6-10)
-- ARGV: now, subscription id, message id, notification payload
-- Returns the job id, or false when the subscription is unknown or expired.
local O, S = outbox_keys(1), sub_keys_at(6)
local now, sid = tonumber(ARGV[1]), ARGV[2]
local s = redis.call('HMGET', S.info, 'project', 'queue', 'expires')
if not s[3] or tonumber(s[3]) <= now then
  return false
end
local id = new_job_ids(O, 1)[1]
save_job(O, id, new_job(sid, s[1], s[2], ARGV[3], ARGV[4], now))
redis.call('ZADD', S.due, now, id)
redis.call('SADD', O.pending, sid)
return id
