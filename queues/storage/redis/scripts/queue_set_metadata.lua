-- queue_set_metadata: replace the metadata and the DLQ settings derived
-- from it, together. KEYS: queue (1-10), project (11-13)
-- ARGV: name, metadata JSON, max_claim_count, dead_letter_queue,
--       dead_letter_ttl ("" = unset)
-- Returns 1, or 0 if the queue does not exist.
if redis.call('HEXISTS', Q.info, 'created') == 0 then
  return 0
end
redis.call('HSET', P.metadata, ARGV[1], ARGV[2])
local fields = {'max_claim_count', 'dead_letter_queue', 'dead_letter_ttl'}
for i, field in ipairs(fields) do
  if ARGV[2 + i] == '' then
    redis.call('HDEL', Q.info, field)
  else
    redis.call('HSET', Q.info, field, ARGV[2 + i])
  end
end
return 1
