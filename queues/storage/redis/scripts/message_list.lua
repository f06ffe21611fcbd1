-- message_list: live messages oldest first, after a marker.
-- KEYS: queue (1-10)
-- ARGV: now, marker to start after, limit, client id to hide ("" = none),
--       include_claimed ("1"/"0"), include_delayed ("1"/"0")
-- Returns {message...}.
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[3])
local hide, with_claimed, with_delayed = ARGV[4], ARGV[5] == '1', ARGV[6] == '1'
reap(Q, now, 20)
local backlog = promote(Q, now, 1000)

-- `free` holds exactly the unclaimed, due messages once promote() is done.
local source = Q.messages
if not with_claimed and not with_delayed and not backlog then
  source = Q.free
end

local found, cursor, chunk = {}, '(' .. ARGV[2], limit
while #found < limit do
  local rows = redis.call('ZRANGEBYSCORE', source, cursor, '+inf',
                          'WITHSCORES', 'LIMIT', 0, chunk)
  for i = 1, #rows, 2 do
    cursor = '(' .. rows[i + 1]
    local m = load_message(Q, rows[i])
    if m and m.expires > now
        and (hide == '' or m.client_id ~= hide)
        and (with_claimed or m.claim_expires <= now)
        and (with_delayed or m.delay_until <= now) then
      found[#found + 1] = m
      if #found == limit then
        break
      end
    end
  end
  if #rows < 2 * chunk then
    break
  end
  chunk = math.min(chunk * 4, 1000)
end
return message_replies(Q, found)
