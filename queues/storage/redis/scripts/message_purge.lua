-- message_purge: drop every message and claim; the queue (and its FIFO
-- counter, so markers never repeat) stays. KEYS: queue (1-10).
redis.call('UNLINK', Q.messages, Q.bodies, Q.records, Q.free, Q.delayed,
           Q.inflight, Q.expiry, Q.claims, Q.claim_expiry)
return 1
