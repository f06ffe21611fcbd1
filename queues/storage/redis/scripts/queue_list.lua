-- queue_list: names of a project's queues in byte order, after a marker.
-- KEYS: project index, project metadata
-- ARGV: marker ("" = from the start), limit, name substring ("" = any),
--       "1" to return metadata, scan budget
-- Returns {done, last scanned name, name..., metadata JSON...}; done is 1
-- when the index was read to its end.
local limit, part, budget = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[5])
local start = '-'
if ARGV[1] ~= '' then
  start = '(' .. ARGV[1]
end
local names, last, scanned, done = {}, '', 0, 0
while #names < limit and scanned < budget do
  local chunk = math.max(limit - #names, 50)
  local rows = redis.call('ZRANGEBYLEX', KEYS[1], start, '+', 'LIMIT', 0, chunk)
  local read = 0
  for _, name in ipairs(rows) do
    read, scanned, last, start = read + 1, scanned + 1, name, '(' .. name
    if part == '' or string.find(name, part, 1, true) then
      names[#names + 1] = name
      if #names == limit then
        break
      end
    end
  end
  if #rows < chunk and read == #rows then
    done = 1
    break
  end
end
local reply = {done, last}
for _, name in ipairs(names) do
  reply[#reply + 1] = name
end
if ARGV[4] == '1' and #names > 0 then
  for _, meta in ipairs(redis.call('HMGET', KEYS[2], unpack(names))) do
    reply[#reply + 1] = meta or '{}'
  end
end
return reply
