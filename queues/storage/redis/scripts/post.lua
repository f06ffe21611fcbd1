-- post: store a batch atomically, in request order, creating the queue.
-- KEYS: queue (1-10), project (11-13)
-- ARGV: now, queue name, registry member, client_id ("" = none),
--       then per message: id, body, ttl, delay, checksum ("" = none)
-- Returns the marker of the last message.
local now = tonumber(ARGV[1])
ensure_queue(Q, ARGV[2], ARGV[3], now)
reap(Q, now, 20)

local client_id = ARGV[4]
local n = (#ARGV - 4) / 5
local last = redis.call('HINCRBY', Q.info, 'counter', n)
local first = last - n
local bodies, records, markers, expiries, free, delayed = {}, {}, {}, {}, {}, {}
for i = 1, n do
  local a = 4 + (i - 1) * 5
  local id, ttl, delay = ARGV[a + 1], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local marker, expires, delay_until = first + i, now + ttl, 0
  if delay > 0 then
    delay_until = now + delay
  end
  bodies[#bodies + 1] = id
  bodies[#bodies + 1] = ARGV[a + 2]
  records[#records + 1] = id
  records[#records + 1] = pack_record(marker, ttl, now, expires, delay_until, 0, 0,
                                     client_id, '', ARGV[a + 5])
  markers[#markers + 1] = marker
  markers[#markers + 1] = id
  expiries[#expiries + 1] = expires
  expiries[#expiries + 1] = id
  if delay_until > 0 then
    delayed[#delayed + 1] = delay_until
    delayed[#delayed + 1] = id
  else
    free[#free + 1] = marker
    free[#free + 1] = id
  end
end
call_chunked('HSET', Q.bodies, bodies)
call_chunked('HSET', Q.records, records)
call_chunked('ZADD', Q.messages, markers)
call_chunked('ZADD', Q.expiry, expiries)
call_chunked('ZADD', Q.free, free)
call_chunked('ZADD', Q.delayed, delayed)
return last
