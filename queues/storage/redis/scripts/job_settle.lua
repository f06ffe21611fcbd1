-- job_settle: ack, retry or bury a leased job, fenced by its lease token.
-- A token is current from its lease until the job is leased again, settled
-- or buried, so a late ack after the lease ended still counts while no
-- other worker took the job.
-- KEYS: outbox (1-5)
-- ARGV: action ("ack" | "retry" | "bury"), job id, lease token,
--       due (retry) or reason (bury), subscription key prefix
-- Touches the due, leased and dead keys of the job's subscription.
-- Returns 1, or 0 (and changes nothing) for an unknown job or stale token.
local O = outbox_keys(1)
local action, id, token = ARGV[1], ARGV[2], ARGV[3]
if action ~= 'ack' and action ~= 'retry' and action ~= 'bury' then
  return redis.error_reply('job_settle: unknown action ' .. action)
end
local j = load_job(O, id)
if not j or token == '' or j[JOB.token] ~= token or j[JOB.dead] == 1 then
  return 0
end
local sid = j[JOB.sid]
local S = sub_keys(ARGV[5], sid)
redis.call('ZREM', S.leased, id)
redis.call('ZREM', S.due, id)
j[JOB.token], j[JOB.lease_expires] = '', 0
if action == 'ack' then
  redis.call('HDEL', O.jobs, id)
elseif action == 'retry' then
  j[JOB.due] = tonumber(ARGV[4])
  save_job(O, id, j)
  redis.call('ZADD', S.due, j[JOB.due], id)
  redis.call('SADD', O.pending, sid)
  return 1
else
  j[JOB.dead], j[JOB.reason] = 1, ARGV[4]
  save_job(O, id, j)
  redis.call('ZADD', S.dead, 0, id)
end
drop_if_idle(O, S, sid)
return 1
