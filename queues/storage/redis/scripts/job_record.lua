-- job_record: append an attempt to a subscription's delivery log, keeping
-- at most `keep` entries and none older than now - keep_seconds.
-- KEYS: outbox (1-5), the subscription (6-10)
-- ARGV: now, at, attempt JSON, keep, keep_seconds
-- Entries are "<seq as 16 hex digits><JSON>" scored by `at`, so equal times
-- keep their recording order. Redis expires an idle log (one nobody
-- records into) once everything in it is too old; the slack only covers
-- clock differences between the driver and Redis.
local O, S = outbox_keys(1), sub_keys_at(6)
local now, keep, keep_seconds = tonumber(ARGV[1]), tonumber(ARGV[4]), tonumber(ARGV[5])
local seq = redis.call('INCR', O.seq)
redis.call('ZADD', S.log, ARGV[2], string.format('%016x', seq) .. ARGV[3])
redis.call('ZREMRANGEBYSCORE', S.log, '-inf', '(' .. num(now - keep_seconds))
redis.call('ZREMRANGEBYRANK', S.log, 0, -(math.max(keep, 0) + 1))
if keep_seconds < 1e9 then
  redis.call('EXPIRE', S.log, math.ceil(math.max(keep_seconds, 0)) + 300)
end
return 1
