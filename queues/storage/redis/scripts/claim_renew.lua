-- claim_renew: restart a live claim for `ttl` seconds from now.
-- KEYS: queue (1-10). ARGV: now, claim id, ttl, grace.
-- Returns 1, or 0 for an unknown or expired claim.
local now, claim_id = tonumber(ARGV[1]), ARGV[2]
local ttl, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
local claim = live_claim(Q, claim_id, now)
if claim == nil then
  return 0
end
local expires = now + ttl
local ids = {}
for _, id in ipairs(claim[5]) do
  local m = load_message(Q, id)
  if m and m.claim_id == claim_id and m.claim_expires > now then
    m.claim_expires = expires
    if extend_life(m, expires, ttl, grace) then
      redis.call('ZADD', Q.expiry, m.expires, id)
    end
    save_message(Q, m)
    redis.call('ZADD', Q.inflight, expires, id)
    ids[#ids + 1] = id
  end
end
save_claim(Q, claim_id, ttl, grace, now, expires, ids)
return 1
