-- claim_create: claim up to `limit` of the oldest free, visible messages.
-- KEYS: queue (1-10), project (11-13), dead-letter queue (14-23, optional)
-- ARGV: now, claim id, ttl, grace, limit, dead-letter queue name the keys
--       14-23 belong to ("" = none given), its registry member
-- Returns {"dlq", name} (nothing changed: call again with that queue's keys),
-- {"none"} or {"ok", message...}.
--
-- Only messages in `free` are picked, and a message is in `free` only when no
-- live claim holds it, so two live claims never share a message. Picked
-- messages already claimed `_max_claim_count` times are moved (same id) to
-- the dead-letter queue in this same step instead of being returned.
local now, claim_id = tonumber(ARGV[1]), ARGV[2]
local ttl, grace, limit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
reap(Q, ARGV[1], 50)         -- now, as text (see int_text)
promote(Q, ARGV[1], 1000)
local picked = pick_free(Q, now, limit)
if #picked == 0 then
  return {'none'}
end

local keep, moving = picked, {}
local settings = redis.call('HMGET', Q.info, 'max_claim_count',
                            'dead_letter_queue', 'dead_letter_ttl')
local max_count, dlq = tonumber(settings[1]), settings[2]
local dlq_ttl = tonumber(settings[3])
if max_count and dlq then
  keep = {}
  for _, m in ipairs(picked) do
    if m.claim_count >= max_count then
      moving[#moving + 1] = m
    else
      keep[#keep + 1] = m
    end
  end
  if #moving > 0 and dlq ~= ARGV[6] then
    return {'dlq', dlq}
  end
end

if #moving > 0 then
  local D = queue_keys(14)
  for _, m in ipairs(moving) do
    local body = redis.call('HGET', Q.bodies, m.id)
    delete_messages(Q, {m.id})
    ensure_queue(D, dlq, ARGV[7], now)
    m.marker = redis.call('HINCRBY', D.info, 'counter', 1)
    m.claim_id, m.claim_expires, m.delay_until = '', 0, 0
    if dlq_ttl then
      m.ttl, m.expires = dlq_ttl, now + dlq_ttl
    end
    insert_message(D, m, body, now)
  end
end
if #keep == 0 then
  return {'none'}
end

local expires = now + ttl
local expires_text, life_text = num(expires), {}  -- scores formatted once
local ids, inflight, expiry = {}, {}, {}
for i, m in ipairs(keep) do
  m.claim_id, m.claim_expires = claim_id, expires
  m.claim_count = m.claim_count + 1
  if extend_life(m, expires, ttl, grace) then
    life_text[m.expires] = life_text[m.expires] or num(m.expires)
    expiry[#expiry + 1] = life_text[m.expires]
    expiry[#expiry + 1] = m.id
  end
  save_message(Q, m)
  ids[i] = m.id
  inflight[#inflight + 1] = expires_text
  inflight[#inflight + 1] = m.id
end
redis.call('ZREM', Q.free, unpack(ids))
redis.call('ZADD', Q.inflight, unpack(inflight))
if #expiry > 0 then
  redis.call('ZADD', Q.expiry, unpack(expiry))
end
save_claim(Q, claim_id, ttl, grace, now, expires, ids)

local reply = message_replies(Q, keep)
table.insert(reply, 1, 'ok')
return reply
