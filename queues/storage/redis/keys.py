"""Every Redis key name of the driver is built here, and nowhere else.

Layout (``<ns>`` is the configured namespace; ``<p>`` and ``<q>`` are the
project and queue name, escaped so that ``{ } / : %`` never appear raw)::

    <ns>:q:{<p>/<q>}:info          HASH  created, counter (FIFO marker), and the
                                         DLQ settings copied from the metadata:
                                         max_claim_count, dead_letter_queue,
                                         dead_letter_ttl
    <ns>:q:{<p>/<q>}:messages      ZSET  message id -> marker (every stored message)
    <ns>:q:{<p>/<q>}:bodies        HASH  message id -> body JSON bytes, as posted
    <ns>:q:{<p>/<q>}:records       HASH  message id -> packed record (see common.lua)
    <ns>:q:{<p>/<q>}:free          ZSET  id -> marker: claimable (not delayed, no claim)
    <ns>:q:{<p>/<q>}:delayed       ZSET  id -> delay_until: posted with a delay
    <ns>:q:{<p>/<q>}:inflight      ZSET  id -> claim_expires: under a claim
    <ns>:q:{<p>/<q>}:expiry        ZSET  id -> expires: drives reclamation
    <ns>:q:{<p>/<q>}:claims        HASH  claim id -> msgpack [ttl, grace, updated,
                                         expires, [message ids]]
    <ns>:q:{<p>/<q>}:claim_expiry  ZSET  claim id -> expires
    <ns>:q:{<p>/<q>}:generation    STRING signed-URL generation; outlives the queue
    <ns>:p:{<p>}:queues            ZSET  queue names of a project (score 0, by name)
    <ns>:p:{<p>}:metadata          HASH  queue name -> metadata JSON
    <ns>:registry                  SET   "<p>/<q>" of every queue, for the sweeper
    <ns>:tokens:revoked            ZSET  token id -> expires (signed-URL deny-list)
    <ns>:tokens:used               ZSET  token id -> expires (one-time tokens used)
    <ns>:rate:<window start>       HASH  counter key -> uses in that window
                                         (EXPIREs a minute after the window)

Every key of one queue carries the same hash tag ``{<p>/<q>}`` and so lives in
one Redis Cluster slot; the project index has its own tag. A stored message is
in exactly one of ``free``, ``delayed`` and ``inflight``.
"""

from __future__ import annotations

import dataclasses
import urllib.parse

_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D", "/": "%2F", ":": "%3A"})
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})

# The order of the queue keys in every script's KEYS (see common.lua).
QUEUE_PARTS = (
    "info", "messages", "bodies", "records", "free", "delayed", "inflight",
    "expiry", "claims", "claim_expiry",
)


def escape(text: str) -> str:
    """Make ``text`` safe inside a key: no hash-tag braces, separators or ``%``."""
    return text.translate(_ESCAPES)


def unescape(text: str) -> str:
    return urllib.parse.unquote(text)


@dataclasses.dataclass(frozen=True, slots=True)
class QueueKeys:
    """The keys of one queue, in script order."""

    member: str  # "<p>/<q>": the hash tag and this queue's registry entry
    keys: tuple[str, ...]
    generation: str

    @property
    def info(self) -> str:
        return self.keys[0]


@dataclasses.dataclass(frozen=True, slots=True)
class ProjectKeys:
    """The project index keys plus the registry, in script order."""

    keys: tuple[str, ...]

    @property
    def queues(self) -> str:
        return self.keys[0]

    @property
    def metadata(self) -> str:
        return self.keys[1]


class Keys:
    """Key builder for one namespace."""

    def __init__(self, namespace: str) -> None:
        self.prefix = escape(namespace) + ":"
        self.registry = self.prefix + "registry"
        self.revoked = self.prefix + "tokens:revoked"
        self.used = self.prefix + "tokens:used"

    def queue(self, project: str, name: str) -> QueueKeys:
        member = f"{escape(project)}/{escape(name)}"
        base = f"{self.prefix}q:{{{member}}}:"
        return QueueKeys(member, tuple(base + part for part in QUEUE_PARTS),
                         base + "generation")

    def project(self, project: str) -> ProjectKeys:
        base = f"{self.prefix}p:{{{escape(project)}}}:"
        return ProjectKeys((base + "queues", base + "metadata", self.registry))

    def rate(self, window_start: int) -> str:
        return f"{self.prefix}rate:{window_start}"

    def pattern(self) -> str:
        """A SCAN MATCH pattern for every key of the namespace."""
        return self.prefix.translate(_GLOB_SPECIAL) + "*"

    @staticmethod
    def parse_member(member: str) -> tuple[str, str]:
        """``(project, queue)`` back from a registry entry."""
        project, _, name = member.partition("/")
        return unescape(project), unescape(name)
