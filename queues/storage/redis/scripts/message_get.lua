-- message_get: the live messages among the given ids (claimed and delayed
-- included). KEYS: queue (1-10). ARGV: now, id...
-- Returns {message...}; unknown, expired and repeated ids are skipped.
local now = tonumber(ARGV[1])
local found, seen = {}, {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if not seen[id] then
    seen[id] = true
    local m = load_message(Q, id)
    if m and m.expires > now then
      found[#found + 1] = m
    end
  end
end
return message_replies(Q, found)
