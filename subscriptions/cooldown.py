"""Coalescing repeated alarms: at most one action per key per cooldown.

Aodh fires once per matching event, so one failing server can put a burst of
alarms in the queue; healing it once is enough (integration.md §1.6, §6.1
point 5). A key (subscription, stack, resource) is *claimed* while its action
runs -- concurrent alarms for it are coalesced -- and, once the action
succeeded, stays cool for the cooldown; an action that failed releases the
claim without starting the cooldown, so its retry (or the next alarm) acts.

LIMITATION: the state lives in this dispatcher process, in a map bounded to
``max_entries`` keys (the oldest are forgotten first). Several dispatcher
processes each keep their own, so with N dispatchers a burst can cause up to
N actions per cooldown; a restart forgets every cooldown. Heat tolerates the
extras (marking a CHECK_FAILED resource again changes nothing; a second
update joins or is refused with 409), so this bounds load rather than
guaranteeing a single heal.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable

DEFAULT_MAX_ENTRIES = 10_000


class Cooldowns:
    """In-memory cooldown and in-progress state, keyed by anything hashable."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._max_entries = max_entries
        self._last: collections.OrderedDict[Hashable, float] = collections.OrderedDict()
        self._busy: set[Hashable] = set()

    def claim(self, key: Hashable, now: float, seconds: float) -> str | None:
        """``None``: go ahead (the key is now in progress; call ``release``).
        Otherwise the reason to coalesce. A cooldown of 0 never coalesces."""
        if seconds <= 0:
            return None
        if key in self._busy:
            return "an action for it is in progress"
        last = self._last.get(key)
        if last is not None and now - last < seconds:
            return f"acted on {now - last:.0f} s ago (cooldown {seconds:g} s)"
        self._busy.add(key)
        return None

    def release(self, key: Hashable, acted_at: float | None) -> None:
        """End a claim; ``acted_at`` (the claim's ``now``) starts the
        cooldown when the action succeeded."""
        self._busy.discard(key)
        if acted_at is None:
            return
        self._last[key] = acted_at
        self._last.move_to_end(key)
        while len(self._last) > self._max_entries:
            self._last.popitem(last=False)

    def __len__(self) -> int:
        return len(self._last)
