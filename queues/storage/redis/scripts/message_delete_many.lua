-- message_delete_many: delete by ids; with claim ids, only messages held by
-- one of those live claims.
-- KEYS: queue (1-10)
-- ARGV: now, "1" if claim ids are given, number of claim ids, claim ids...,
--       message ids...
local now, by_claim, n = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3])
local claim_ids = {}
for i = 4, 3 + n do
  claim_ids[ARGV[i]] = true
end
local doomed = {}
for i = 4 + n, #ARGV do
  local id = ARGV[i]
  if not by_claim then
    doomed[#doomed + 1] = id
  else
    local m = load_message(Q, id)
    if m and claim_ids[m.claim_id] and m.claim_expires > now then
      doomed[#doomed + 1] = id
    end
  end
end
delete_messages(Q, doomed)
return #doomed
