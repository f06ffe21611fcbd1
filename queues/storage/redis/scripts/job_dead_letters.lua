-- job_dead_letters: the oldest `limit` dead letters of one subscription.
-- KEYS: outbox (1-5), the subscription (6-10). ARGV: limit (> 0)
-- Returns {job reply, ...}.
local O, S = outbox_keys(1), sub_keys_at(6)
local reply = {}
for _, id in ipairs(redis.call('ZRANGE', S.dead, 0, tonumber(ARGV[1]) - 1)) do
  local j = load_job(O, id)
  if j then
    reply[#reply + 1] = job_reply(id, j)
  end
end
return reply
