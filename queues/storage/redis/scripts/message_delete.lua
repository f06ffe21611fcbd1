-- message_delete: delete one message, applying Zaqar's claim rules.
-- KEYS: queue (1-10). ARGV: now, message id, "1" if a claim id is given, claim id.
-- Returns 0 deleted (or nothing to delete), 1 MessageIsClaimed,
-- 2 MessageNotClaimed, 3 ClaimExpired.
local now, id, claim_id = tonumber(ARGV[1]), ARGV[2], ARGV[4]
local m = load_message(Q, id)
if m == nil or m.expires <= now then
  return 0
end
local claimed = m.claim_expires > now
if ARGV[3] ~= '1' then
  if claimed then
    return 1
  end
elseif not claimed then
  if m.claim_id == claim_id then
    return 3
  end
  return 2
elseif m.claim_id ~= claim_id then
  if live_claim(Q, claim_id, now) then
    return 1
  end
  return 3
end
delete_messages(Q, {id})
return 0
