-- token_mark: mark a signed-URL token id until `expires`, unless a live
-- mark exists; expired marks are dropped on the way.
-- KEYS: the mark set (revoked or used). ARGV: now, token id, expires.
-- Returns 1 if this call marked it, 0 if it was already marked.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
return 1
