-- Shared helpers: lua.py prepends this file to every other script.
--
-- KEYS[1..10] are the keys of one queue (keys.py QUEUE_PARTS order);
-- scripts that may create or delete a queue also get the project index,
-- the project metadata hash and the registry as KEYS[11..13]; the claim
-- script gets the dead-letter queue's keys as KEYS[14..23].
--
-- A message record (HASH records, id -> bytes) is struct-packed as RECORD:
--   marker, ttl, created, expires, delay_until, claim_expires (doubles),
--   claim_count (uint32), then client_id, claim_id, checksum (each a uint32
--   length and the bytes; "" when absent); claim_expires is 0 when absent.
-- Replies carry the record bytes as they are; lua.py decodes them.
-- Times are POSIX seconds from the driver's clock, passed in as ARGV.
-- A message is live while expires > now, delayed while delay_until > now and
-- claimed while claim_expires > now.

local function queue_keys(base)
  return {
    info = KEYS[base], messages = KEYS[base + 1], bodies = KEYS[base + 2],
    records = KEYS[base + 3], free = KEYS[base + 4], delayed = KEYS[base + 5],
    inflight = KEYS[base + 6], expiry = KEYS[base + 7], claims = KEYS[base + 8],
    claim_expiry = KEYS[base + 9],
  }
end

local Q = queue_keys(1)
local P = {queues = KEYS[11], metadata = KEYS[12], registry = KEYS[13]}

-- Lua's own number->string conversion (tostring, ..) keeps 14 digits: too
-- few for times. (Numbers passed to redis.call are converted with 17.)
local function num(x)
  return string.format('%.17g', x)
end

-- A whole number as text. Numbers handed to redis.call are formatted with
-- '%.17g', a costly printf of a double (a few thousand instructions each);
-- '%d' is cheap. Hot scripts also pass times on as the ARGV text they came
-- in as, and format a score shared by a batch once.
local function int_text(x)
  return string.format('%d', x)
end

-- Run `cmd key a1 a2 ...` in slices, so no unpack() exceeds Lua's C stack.
local CHUNK = 2000
local function call_chunked(cmd, key, items)
  for i = 1, #items, CHUNK do
    redis.call(cmd, key, unpack(items, i, math.min(i + CHUNK - 1, #items)))
  end
end

-- HMGET of any number of fields, in the same slices; values in field order.
local function hmget_chunked(key, fields)
  local values = {}
  for i = 1, #fields, CHUNK do
    local slice = redis.call('HMGET', key, unpack(fields, i, math.min(i + CHUNK - 1, #fields)))
    for k = 1, #slice do
      values[i + k - 1] = slice[k]
    end
  end
  return values
end

local RECORD = '>ddddddI4I4c0I4c0I4c0'

local function pack_record(marker, ttl, created, expires, delay_until, claim_expires,
                           claim_count, client_id, claim_id, checksum)
  return struct.pack(RECORD, marker, ttl, created, expires, delay_until,
                     claim_expires, claim_count, #client_id, client_id,
                     #claim_id, claim_id, #checksum, checksum)
end

local function load_message(K, id)
  local raw = redis.call('HGET', K.records, id)
  if not raw then
    return nil
  end
  local marker, ttl, created, expires, delay_until, claim_expires, claim_count,
        client_id, claim_id, checksum = struct.unpack(RECORD, raw)
  return {
    id = id, raw = raw, marker = marker, ttl = ttl, created = created,
    expires = expires, delay_until = delay_until, client_id = client_id,
    claim_id = claim_id, claim_expires = claim_expires,
    claim_count = claim_count, checksum = checksum,
  }
end

local function save_message(K, m)
  m.raw = pack_record(m.marker, m.ttl, m.created, m.expires, m.delay_until,
                      m.claim_expires, m.claim_count, m.client_id, m.claim_id,
                      m.checksum)
  redis.call('HSET', K.records, m.id, m.raw)
end

-- Store a new message (or one moved in from another queue) as free/delayed.
local function insert_message(K, m, body, now)
  redis.call('HSET', K.bodies, m.id, body)
  save_message(K, m)
  redis.call('ZADD', K.messages, m.marker, m.id)
  redis.call('ZADD', K.expiry, m.expires, m.id)
  if m.delay_until > now then
    redis.call('ZADD', K.delayed, m.delay_until, m.id)
  else
    redis.call('ZADD', K.free, m.marker, m.id)
  end
end

-- Remove messages from every structure of the queue.
local function delete_messages(K, ids)
  if #ids == 0 then
    return
  end
  call_chunked('HDEL', K.records, ids)
  call_chunked('HDEL', K.bodies, ids)
  for _, key in ipairs({K.messages, K.free, K.delayed, K.inflight, K.expiry}) do
    call_chunked('ZREM', key, ids)
  end
end

-- Reclaim up to `budget` expired messages; true when the budget ran out.
local function reap_messages(K, now, budget)
  local gone = redis.call('ZRANGEBYSCORE', K.expiry, '-inf', now,
                          'LIMIT', '0', int_text(budget))
  delete_messages(K, gone)
  return #gone == budget
end

-- Reclaim up to `budget` expired messages and expired claims.
-- Returns true when the budget ran out (more may be waiting).
local function reap(K, now, budget)
  local more = reap_messages(K, now, budget)
  local claims = redis.call('ZRANGEBYSCORE', K.claim_expiry, '-inf', now,
                            'LIMIT', '0', int_text(budget))
  if #claims > 0 then
    redis.call('HDEL', K.claims, unpack(claims))
    redis.call('ZREM', K.claim_expiry, unpack(claims))
  end
  return more or #claims == budget
end

-- Move due delayed messages and messages of expired claims back to `free`.
-- Returns true when the budget ran out (more may be waiting).
local function promote(K, now, budget)
  local more = false
  for _, source in ipairs({K.delayed, K.inflight}) do
    local ids = redis.call('ZRANGEBYSCORE', source, '-inf', now,
                           'LIMIT', '0', int_text(budget))
    if #ids > 0 then
      redis.call('ZREM', source, unpack(ids))
      local pairs_ = {}
      for _, id in ipairs(ids) do
        local marker = redis.call('ZSCORE', K.messages, id)
        if marker then
          pairs_[#pairs_ + 1] = marker
          pairs_[#pairs_ + 1] = id
        end
      end
      if #pairs_ > 0 then
        redis.call('ZADD', K.free, unpack(pairs_))
      end
      more = more or #ids == budget
    end
  end
  return more
end

-- Up to `limit` live messages from the head of `free`, oldest first; free
-- entries found dead on the way are deleted. `free` is not changed otherwise.
-- At most DEAD_BUDGET dead entries are handled per call, so one script never
-- blocks Redis for long; the rest wait for the next call or the sweeper.
local DEAD_BUDGET = 1000
local function pick_free(K, now, limit)
  local picked, dead, offset = {}, {}, 0
  while #picked < limit and #dead < DEAD_BUDGET do
    local ids = redis.call('ZRANGE', K.free, int_text(offset),
                           int_text(offset + limit - #picked - 1))
    if #ids == 0 then
      break
    end
    offset = offset + #ids
    for _, id in ipairs(ids) do
      local m = load_message(K, id)
      if m == nil or m.expires <= now then
        dead[#dead + 1] = id
      else
        picked[#picked + 1] = m
      end
    end
  end
  delete_messages(K, dead)
  return picked
end

-- A claim keeps its messages alive until its end plus the grace period.
-- Returns true if the message's life was extended.
local function extend_life(m, claim_expires, ttl, grace)
  if m.expires < claim_expires + grace then
    m.expires = claim_expires + grace
    m.ttl = ttl + grace
    return true
  end
  return false
end

-- The live claim record {ttl, grace, updated, expires, ids} or nil.
local function live_claim(K, claim_id, now)
  local raw = redis.call('HGET', K.claims, claim_id)
  if not raw then
    return nil
  end
  local c = cmsgpack.unpack(raw)
  if c[4] <= now then
    return nil
  end
  return c
end

local function save_claim(K, claim_id, ttl, grace, updated, expires, ids)
  redis.call('HSET', K.claims, claim_id,
             cmsgpack.pack({ttl, grace, updated, expires, ids}))
  redis.call('ZADD', K.claim_expiry, expires, claim_id)
end

-- Create the queue if missing (its info hash, project index, registry).
local function ensure_queue(K, name, member, now)
  if redis.call('HSETNX', K.info, 'created', now) == 0 then
    return false
  end
  redis.call('ZADD', P.queues, 0, name)
  redis.call('HSETNX', P.metadata, name, '{}')
  redis.call('SADD', P.registry, member)
  return true
end

-- Replies: {id, body, record bytes} per message, the order lua.py parses.
local function message_replies(K, messages)
  local out = {}
  if #messages == 0 then
    return out
  end
  local ids = {}
  for i, m in ipairs(messages) do
    ids[i] = m.id
  end
  local bodies = redis.call('HMGET', K.bodies, unpack(ids))
  for i, m in ipairs(messages) do
    out[i] = {m.id, bodies[i] or '', m.raw}
  end
  return out
end
