-- sweep: reclaim the memory of expired messages and claims of one queue.
-- KEYS: queue (1-10). ARGV: now, budget.
-- Returns 1 when the budget ran out and more may be waiting.
local now = tonumber(ARGV[1])
local more = reap(Q, now, tonumber(ARGV[2]))
promote(Q, now, tonumber(ARGV[2]))
if more then
  return 1
end
return 0
