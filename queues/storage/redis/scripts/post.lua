-- post: store a batch atomically, in request order, creating the queue,
-- and write its delivery jobs (the outbox) in the same step.
-- The bodies are not arguments: the driver HSETs them into Q.bodies in the
-- same MULTI/EXEC, just before this script (a body in Lua costs Redis a hash
-- of its every byte). A body without a record is thus left only when this
-- script fails; the sweeper reclaims such orphans (sweep.lua).
-- KEYS: queue (1-10), project (11-13), the queue's targets (14), outbox (15-19)
-- ARGV: now, queue name, registry member, client_id ("" = none), project,
--       subscription key prefix, then per message: id, ttl, delay,
--       checksum ("" = none).
-- Touches, besides KEYS, the due ZSET of each target subscription.
-- Returns the marker of the last message.
local EACH, FIELDS = 4, 6   -- message i's fields: ARGV[FIELDS + (i - 1) * EACH + 1..4]
local now = tonumber(ARGV[1])
local client_id = ARGV[4]
local n = (#ARGV - FIELDS) / EACH
local last = redis.call('HINCRBY', Q.info, 'counter', n)
local first = last - n
if first == 0 then
  -- The first post since the queue's info hash appeared: it may be new.
  ensure_queue(Q, ARGV[2], ARGV[3], now)
end
-- Expired claims are left to the claim scripts and the sweeper.
reap_messages(Q, ARGV[1], 20)   -- now, as text (see int_text)
local records, markers, expiries, free, delayed = {}, {}, {}, {}, {}
-- Scores go to ZADD as strings formatted here: Redis would format each
-- number with '%.17g' (a costly printf of a double) and a batch mostly
-- shares one expiry time.
local expiry_text = {}
for i = 1, n do
  local a = FIELDS + (i - 1) * EACH
  local id, ttl, delay = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local marker, expires, delay_until = first + i, now + ttl, 0
  if delay > 0 then
    delay_until = now + delay
  end
  records[#records + 1] = id
  records[#records + 1] = pack_record(marker, ttl, now, expires, delay_until, 0, 0,
                                     client_id, '', ARGV[a + 4])
  local marker_text = string.format('%d', marker)
  local expires_text = expiry_text[expires]
  if expires_text == nil then
    expires_text = num(expires)
    expiry_text[expires] = expires_text
  end
  markers[#markers + 1] = marker_text
  markers[#markers + 1] = id
  expiries[#expiries + 1] = expires_text
  expiries[#expiries + 1] = id
  if delay_until > 0 then
    delayed[#delayed + 1] = delay_until
    delayed[#delayed + 1] = id
  else
    free[#free + 1] = marker_text
    free[#free + 1] = id
  end
end
call_chunked('HSET', Q.records, records)
call_chunked('ZADD', Q.messages, markers)
call_chunked('ZADD', Q.expiry, expiries)
call_chunked('ZADD', Q.free, free)
call_chunked('ZADD', Q.delayed, delayed)

-- Zaqar's notification payload, spliced around the body as posted: the same
-- bytes as the Python notification() the SQLite driver stores (checked by
-- tests/storage/test_redis_jobs.py). ttl and delay arrive as digits.
local function notification(a, body)
  local head = '{"body": ' .. body .. ', "ttl": ' .. ARGV[a + 2]
  if tonumber(ARGV[a + 3]) ~= 0 then
    return head .. ', "delay": ' .. ARGV[a + 3] .. '}'
  end
  return head .. '}'
end

-- One due job per message and live, enabled subscription, message by message.
local function write_jobs(O, targets)
  local ids = new_job_ids(O, n * #targets)
  local records, due, message_ids = {}, {}, {}
  for t = 1, #targets do
    due[t] = {}
  end
  for i = 1, n do
    message_ids[i] = ARGV[FIELDS + (i - 1) * EACH + 1]
  end
  local bodies = hmget_chunked(Q.bodies, message_ids)
  for i = 1, n do
    local a = FIELDS + (i - 1) * EACH
    local payload = notification(a, bodies[i])
    for t, sid in ipairs(targets) do
      local id = ids[(i - 1) * #targets + t]
      records[#records + 1] = id
      records[#records + 1] = cmsgpack.pack(
        new_job(sid, ARGV[5], ARGV[2], ARGV[a + 1], payload, now))
      due[t][#due[t] + 1] = ARGV[1]   -- now, as text
      due[t][#due[t] + 1] = id
    end
  end
  call_chunked('HSET', O.jobs, records)
  for t, sid in ipairs(targets) do
    call_chunked('ZADD', sub_keys(ARGV[6], sid).due, due[t])
  end
  call_chunked('SADD', O.pending, targets)
end

-- The only outbox cost of a queue without subscribers: this one lookup.
local targets = redis.call('ZRANGEBYSCORE', KEYS[14], '(' .. ARGV[1], '+inf')
if #targets > 0 then
  write_jobs(outbox_keys(15), targets)
end
return last
