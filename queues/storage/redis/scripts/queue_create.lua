-- queue_create: create a queue unless it exists.
-- KEYS: queue (1-10), project (11-13)
-- ARGV: now, name, registry member, metadata JSON, then the DLQ settings
--       max_claim_count, dead_letter_queue, dead_letter_ttl ("" = unset)
-- Returns 1 if created, 0 if it existed.
if not ensure_queue(Q, ARGV[2], ARGV[3], tonumber(ARGV[1])) then
  return 0
end
redis.call('HSET', P.metadata, ARGV[2], ARGV[4])
local fields = {'max_claim_count', 'dead_letter_queue', 'dead_letter_ttl'}
for i, field in ipairs(fields) do
  if ARGV[4 + i] ~= '' then
    redis.call('HSET', Q.info, field, ARGV[4 + i])
  end
end
return 1
