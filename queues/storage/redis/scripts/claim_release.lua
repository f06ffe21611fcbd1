-- claim_release: end a claim and free its messages at once. Idempotent.
-- KEYS: queue (1-10). ARGV: now, claim id.
-- Only messages whose claim_id is still this claim are touched, so a message
-- that another claim took after this one expired stays with that claim.
local claim_id = ARGV[2]
local raw = redis.call('HGET', Q.claims, claim_id)
if not raw then
  return 0
end
for _, id in ipairs(cmsgpack.unpack(raw)[5]) do
  local m = load_message(Q, id)
  if m and m.claim_id == claim_id then
    m.claim_id, m.claim_expires = '', 0
    save_message(Q, m)
    if redis.call('ZREM', Q.inflight, id) == 1 then
      redis.call('ZADD', Q.free, m.marker, id)
    end
  end
end
redis.call('HDEL', Q.claims, claim_id)
redis.call('ZREM', Q.claim_expiry, claim_id)
return 1
