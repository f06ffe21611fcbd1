-- queue_delete: remove a queue with its messages and claims. Idempotent.
-- Deleting an existing queue bumps its signed-URL generation, so tokens
-- minted for it are not honoured by a re-created queue of the same name.
-- KEYS: queue (1-10), project (11-13), generation (14).
-- ARGV: name, registry member.
if redis.call('EXISTS', Q.info) == 0 then
  return 0
end
redis.call('INCR', KEYS[14])
redis.call('UNLINK', unpack(KEYS, 1, 10))
redis.call('ZREM', P.queues, ARGV[1])
redis.call('HDEL', P.metadata, ARGV[1])
redis.call('SREM', P.registry, ARGV[2])
return 1
