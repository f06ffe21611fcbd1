-- claim_get: a live claim and the live messages it still holds.
-- KEYS: queue (1-10). ARGV: now, claim id.
-- Returns nil or {ttl, grace, updated, expires, message...}.
local now, claim_id = tonumber(ARGV[1]), ARGV[2]
local claim = live_claim(Q, claim_id, now)
if claim == nil then
  return nil
end
local held = {}
for _, id in ipairs(claim[5]) do
  local m = load_message(Q, id)
  if m and m.claim_id == claim_id and m.claim_expires > now and m.expires > now then
    held[#held + 1] = m
  end
end
local reply = message_replies(Q, held)
table.insert(reply, 1, num(claim[4]))
table.insert(reply, 1, num(claim[3]))
table.insert(reply, 1, num(claim[2]))
table.insert(reply, 1, num(claim[1]))
return reply
