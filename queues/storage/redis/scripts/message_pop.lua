-- message_pop: remove and return up to `limit` free, visible messages,
-- oldest first, in one step. KEYS: queue (1-10). ARGV: now, limit.
local now = tonumber(ARGV[1])
reap(Q, now, 50)
promote(Q, now, 1000)
local picked = pick_free(Q, now, tonumber(ARGV[2]))
local reply = message_replies(Q, picked)
local ids = {}
for i, m in ipairs(picked) do
  ids[i] = m.id
end
delete_messages(Q, ids)
return reply
