-- Outbox helpers: lua.py appends this file (after common.lua) to the post,
-- subscription and job scripts.
--
-- Key blocks, each passed in KEYS in the order keys.py gives them:
--   index  (3): the queue's subscriptions, subscribers, targets
--   outbox (5): subscriptions:expiry, jobs, jobs:pending, jobs:breakers, seq
--   sub    (5): one subscription's info, due, leased, dead, log
-- A script that meets a subscription id in the data (a post's targets, a
-- lease's pending set, a job's record) builds that subscription's keys with
-- sub_keys(), from the prefix keys.py passes as an argument: ids are 32 hex
-- digits minted by the driver, so no escaping is needed.
--
-- A job record (HASH jobs, id -> bytes) is a msgpack array, JOB below:
--   subscription id, project, queue, message id, notification payload,
--   created, due, attempts, lease_token ("" = none), lease_expires (0 = none),
--   dead (0/1), dead reason.
-- Job ids are the namespace's `seq` counter as 16 hex digits, so they sort
-- in creation order: ZSETs of jobs order equal scores by creation.

local function index_keys(base)
  return {subscriptions = KEYS[base], subscribers = KEYS[base + 1],
          targets = KEYS[base + 2]}
end

local function outbox_keys(base)
  return {expiry = KEYS[base], jobs = KEYS[base + 1], pending = KEYS[base + 2],
          breakers = KEYS[base + 3], seq = KEYS[base + 4]}
end

local function sub_keys_at(base)
  return {info = KEYS[base], due = KEYS[base + 1], leased = KEYS[base + 2],
          dead = KEYS[base + 3], log = KEYS[base + 4]}
end

-- keys.py Keys.subscription(), for an id found in the data.
local function sub_keys(prefix, id)
  local base = prefix .. '{' .. id .. '}:'
  return {info = base .. 'info', due = base .. 'due', leased = base .. 'leased',
          dead = base .. 'dead', log = base .. 'log'}
end

local JOB = {sid = 1, project = 2, queue = 3, message_id = 4, message = 5,
             created = 6, due = 7, attempts = 8, token = 9, lease_expires = 10,
             dead = 11, reason = 12}

-- `count` new job ids, in creation order.
local function new_job_ids(O, count)
  local last = redis.call('INCRBY', O.seq, count)
  local ids = {}
  for i = 1, count do
    ids[i] = string.format('%016x', last - count + i)
  end
  return ids
end

local function new_job(sid, project, queue, message_id, message, now)
  return {sid, project, queue, message_id, message, now, now, 0, '', 0, 0, ''}
end

local function load_job(O, id)
  local raw = redis.call('HGET', O.jobs, id)
  if not raw then
    return nil
  end
  return cmsgpack.unpack(raw)
end

local function save_job(O, id, j)
  redis.call('HSET', O.jobs, id, cmsgpack.pack(j))
end

-- The reply lua.py's caller parses: id and the DeliveryJob fields in order.
local function job_reply(id, j)
  return {id, j[JOB.sid], j[JOB.project], j[JOB.queue], j[JOB.message_id],
          j[JOB.message], num(j[JOB.created]), num(j[JOB.due]), j[JOB.attempts],
          j[JOB.token], num(j[JOB.lease_expires])}
end

-- A subscription without due or leased jobs leaves the pending set.
local function drop_if_idle(O, S, sid)
  if redis.call('ZCARD', S.due) == 0 and redis.call('ZCARD', S.leased) == 0 then
    redis.call('SREM', O.pending, sid)
  end
end

-- Delete the job records listed in a ZSET, in slices, then the ZSET.
local function drop_jobs(O, key)
  while true do
    local ids = redis.call('ZRANGE', key, 0, 999)
    if #ids == 0 then
      return
    end
    redis.call('HDEL', O.jobs, unpack(ids))
    redis.call('ZREM', key, unpack(ids))
  end
end

-- keys.py subscriber_field(): the field of the queue's subscribers hash
-- (uniqueness) held by a subscription with this URI and options digest.
local function subscriber_field(subscriber, digest)
  return subscriber .. ' ' .. digest
end

-- Delete a subscription with its jobs (dead letters included), breaker and
-- delivery log. I must be the index of the subscription's own queue.
local function drop_subscription(O, I, S, id)
  local held = redis.call('HMGET', S.info, 'subscriber', 'digest')
  if held[1] then
    local field = subscriber_field(held[1], held[2] or '')
    if redis.call('HGET', I.subscribers, field) == id then
      redis.call('HDEL', I.subscribers, field)
    end
  end
  for _, key in ipairs({S.due, S.leased, S.dead}) do
    drop_jobs(O, key)
  end
  redis.call('UNLINK', S.info, S.log)
  redis.call('ZREM', I.subscriptions, id)
  redis.call('ZREM', I.targets, id)
  redis.call('ZREM', O.expiry, id)
  redis.call('ZREM', O.breakers, id)
  redis.call('SREM', O.pending, id)
end

-- A subscription's stored fields as a table (nil when it does not exist).
local function load_subscription(S)
  local fields = redis.call('HGETALL', S.info)
  if #fields == 0 then
    return nil, fields
  end
  local s = {}
  for i = 1, #fields, 2 do
    s[fields[i]] = fields[i + 1]
  end
  return s, fields
end

local function is_live(s, now)
  return s ~= nil and tonumber(s.expires) > now
end
