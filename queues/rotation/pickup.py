"""Did a target pick up its current generation? What the store can show.

Two signs, both observed through the storage interface:

1. **Its credentials-queue document was taken**: the message of that
   generation is gone before it could have expired (the VM deleted it, its
   ack), or it has been claimed. The daemon only deletes *superseded*
   documents, never the current one.
2. **It used one of the generation's grants**: the API counts every accepted
   token use per ``jti`` in the store (the shared rate counters,
   ``GrantStore.count_uses``); adding zero reads the count of the current
   60-second window. This covers targets without a credentials queue, but
   it is best effort: a use is seen only while its window is current, and
   API workers flush counts every few requests or
   ``signing.revocation_cache_ttl`` seconds.

Neither sign can be forged by anyone but a holder of the generation's
tokens (or of the project's queue API).
"""

from __future__ import annotations

from queues.api.signed import RATE_WINDOW
from queues.errors import MessageNotFound
from queues.rotation.ledger import Generation
from queues.rotation.template import Target
from queues.storage.base import Driver

DELETED = "deleted"
CLAIMED = "claimed"
USED = "used"


async def observe(storage: Driver, target: Target, generation: Generation,
                  now: float) -> str | None:
    """``DELETED``, ``CLAIMED``, ``USED``, or None when there is no sign yet."""
    taken = await _document_taken(storage, target, generation, now)
    if taken is not None:
        return taken
    counts = await storage.grants.count_uses(
        {grant.jti: 0 for grant in generation.grants}, RATE_WINDOW)
    return USED if any(counts.values()) else None


async def _document_taken(storage: Driver, target: Target, generation: Generation,
                          now: float) -> str | None:
    queue = target.credentials_queue
    if queue is None or generation.message_id is None:
        return None
    try:
        message = await storage.messages.get(target.project, queue,
                                             generation.message_id)
    except MessageNotFound:
        # Gone before its ttl (= the grants' ttl) ran out: someone deleted it.
        return DELETED if now < generation.expires else None
    if message.claim_count > 0 or message.claim_id is not None:
        return CLAIMED
    return None
