-- job_replay: make dead letters of one subscription due now, as new jobs
-- (attempts back to 0).
-- KEYS: outbox (1-5), the subscription (6-10)
-- ARGV: now, subscription id, all (1 = every dead letter, 0 = those listed),
--       job ids...
-- Returns how many were replayed.
local O, S = outbox_keys(1), sub_keys_at(6)
local now = tonumber(ARGV[1])
local ids = {}
if ARGV[3] == '1' then
  ids = redis.call('ZRANGE', S.dead, 0, -1)
else
  for i = 4, #ARGV do
    if redis.call('ZREM', S.dead, ARGV[i]) == 1 then
      ids[#ids + 1] = ARGV[i]
    end
  end
end
local due = {}
for _, id in ipairs(ids) do
  local j = load_job(O, id)
  if j then
    j[JOB.due], j[JOB.attempts], j[JOB.token], j[JOB.lease_expires] = now, 0, '', 0
    j[JOB.dead], j[JOB.reason] = 0, ''
    save_job(O, id, j)
    due[#due + 1] = now
    due[#due + 1] = id
  end
end
call_chunked('ZREM', S.dead, ids)
call_chunked('ZADD', S.due, due)
if #due > 0 then
  redis.call('SADD', O.pending, ARGV[2])
end
return #due / 2
