-- rate_count: add local use counts to a rate window's shared counters.
-- KEYS: the window's hash. ARGV: seconds the hash outlives now, then
-- counter name and amount pairs (an amount of 0 reads the count).
-- Returns the new count of each name, in ARGV order.
local totals = {}
for i = 2, #ARGV, 2 do
  totals[#totals + 1] = redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
-- Redis's own clock only bounds the memory; the window comes from ours.
redis.call('EXPIRE', KEYS[1], ARGV[1])
return totals
