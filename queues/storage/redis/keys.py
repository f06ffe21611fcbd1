"""Every Redis key name of the driver is built here, and nowhere else (the
outbox scripts only append a subscription id to a prefix built here; see
the end of this docstring).

Layout (``<ns>`` is the configured namespace; ``<p>``, ``<q>`` and ``<id>``
are the project, queue name and subscription id, escaped so that
``{ } / : %`` never appear raw)::

    <ns>:q:{<p>/<q>}:info          HASH  created, counter (FIFO marker), and the
                                         DLQ settings copied from the metadata:
                                         max_claim_count, dead_letter_queue,
                                         dead_letter_ttl
    <ns>:q:{<p>/<q>}:messages      ZSET  message id -> marker (every stored message)
    <ns>:q:{<p>/<q>}:bodies        HASH  message id -> body JSON bytes, as posted
                                         (written outside Lua, in the post's
                                         MULTI/EXEC; see post.lua)
    <ns>:q:{<p>/<q>}:records       HASH  message id -> packed record (see common.lua)
    <ns>:q:{<p>/<q>}:free          ZSET  id -> marker: claimable (not delayed, no claim)
    <ns>:q:{<p>/<q>}:delayed       ZSET  id -> delay_until: posted with a delay
    <ns>:q:{<p>/<q>}:inflight      ZSET  id -> claim_expires: under a claim
    <ns>:q:{<p>/<q>}:expiry        ZSET  id -> expires: drives reclamation
    <ns>:q:{<p>/<q>}:claims        HASH  claim id -> msgpack [ttl, grace, updated,
                                         expires, [message ids]]
    <ns>:q:{<p>/<q>}:claim_expiry  ZSET  claim id -> expires
    <ns>:q:{<p>/<q>}:generation    STRING signed-URL generation; outlives the queue
    <ns>:q:{<p>/<q>}:subscriptions ZSET  subscription id -> created (listing order)
    <ns>:q:{<p>/<q>}:subscribers   HASH  subscriber_field(subscriber URI, options
                                         digest) -> subscription id (uniqueness)
    <ns>:q:{<p>/<q>}:targets       ZSET  id -> expires of the enabled subscriptions
                                         (what a post fans out to); these three
                                         outlive the queue, as Zaqar's do
    <ns>:p:{<p>}:queues            ZSET  queue names of a project (score 0, by name)
    <ns>:p:{<p>}:metadata          HASH  queue name -> metadata JSON
    <ns>:registry                  SET   "<p>/<q>" of every queue, for the sweeper
    <ns>:tokens:revoked            ZSET  token id -> expires (signed-URL deny-list)
    <ns>:tokens:used               ZSET  token id -> expires (one-time tokens used)
    <ns>:rate:<window start>       HASH  counter key -> uses in that window
                                         (EXPIREs a minute after the window)
    <ns>:s:{<id>}:info             HASH  one subscription: project, queue, subscriber,
                                         ttl, created, expires, options, confirmed,
                                         secret, disabled, digest (options_digest)
    <ns>:s:{<id>}:due              ZSET  job id -> due: its waiting jobs
    <ns>:s:{<id>}:leased           ZSET  job id -> lease_expires: its leased jobs (the
                                         next lease moves ended ones back to due)
    <ns>:s:{<id>}:dead             ZSET  job id -> 0: its dead letters (id order)
    <ns>:s:{<id>}:log              ZSET  "<seq hex>"+attempt JSON -> at (delivery log)
    <ns>:subscriptions:expiry      ZSET  subscription id -> expires, for the sweeper
    <ns>:jobs                      HASH  job id -> msgpack record (see outbox.lua)
    <ns>:jobs:pending              SET   subscription ids with due or leased jobs
    <ns>:jobs:breakers             ZSET  subscription id -> breaker open until
    <ns>:seq                       STRING counter behind job ids and log entries

Every key of one queue carries the same hash tag ``{<p>/<q>}`` and so lives in
one Redis Cluster slot; the project index has its own tag. A stored message is
in exactly one of ``free``, ``delayed`` and ``inflight``; a job is in exactly
one of its subscription's ``due``, ``leased`` and ``dead``.

The outbox scripts meet subscription ids as they run (a post fans out to the
queue's ``targets``, a lease walks ``jobs:pending``, a settle reads the job's
record), so they derive those ``<ns>:s:{<id>}:*`` keys themselves from
``Keys.subscription_prefix`` (outbox.lua ``sub_keys``, mirroring
``Keys.subscription``). Subscription ids are 32 hex digits minted by the
driver, on which ``escape`` is the identity, so both sides build the same
names. Likewise the subscription scripts build the fields of a queue's
``subscribers`` hash with outbox.lua ``subscriber_field``, mirroring
``subscriber_field`` here: an update may change the URI or the options
alone, and only the script sees the stored other half. Those scripts touch
keys of several slots: Redis Cluster is not supported (DLQ moves and queue
creation already span two tags).
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
# The order of a subscription's keys (outbox.lua sub_keys mirrors it).
SUBSCRIPTION_PARTS = ("info", "due", "leased", "dead", "log")


def escape(text: str) -> str:
    """Make ``text`` safe inside a key: no hash-tag braces, separators or ``%``."""
    return text.translate(_ESCAPES)


def unescape(text: str) -> str:
    return urllib.parse.unquote(text)


def subscriber_field(subscriber: str, digest: str) -> str:
    """The field of a queue's ``subscribers`` hash that a subscription holds:
    subscriptions are unique by (subscriber URI, options digest) per queue.
    The digest has a fixed length, so the pair reads back unambiguously."""
    return f"{subscriber} {digest}"


@dataclasses.dataclass(frozen=True, slots=True)
class QueueKeys:
    """The keys of one queue, in script order."""

    member: str  # "<p>/<q>": the hash tag and this queue's registry entry
    keys: tuple[str, ...]
    generation: str
    subscriptions: str
    subscribers: str
    targets: str

    @property
    def info(self) -> str:
        return self.keys[0]

    @property
    def bodies(self) -> str:
        return self.keys[QUEUE_PARTS.index("bodies")]

    @property
    def subscription_index(self) -> tuple[str, str, str]:
        """The queue's subscription keys, in the subscription scripts' order."""
        return (self.subscriptions, self.subscribers, self.targets)


@dataclasses.dataclass(frozen=True, slots=True)
class SubscriptionKeys:
    """The keys of one subscription and its jobs, in script order."""

    info: str
    due: str
    leased: str
    dead: str
    log: str

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.info, self.due, self.leased, self.dead, self.log)


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxKeys:
    """The namespace-wide keys of the outbox, in script order."""

    expiry: str  # subscriptions:expiry
    jobs: str
    pending: str
    breakers: str
    seq: str

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.expiry, self.jobs, self.pending, self.breakers, self.seq)


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
        # What outbox.lua's sub_keys() puts before "{<id>}:<part>".
        self.subscription_prefix = self.prefix + "s:"
        self.outbox = OutboxKeys(
            self.prefix + "subscriptions:expiry", self.prefix + "jobs",
            self.prefix + "jobs:pending", self.prefix + "jobs:breakers",
            self.prefix + "seq")

    def queue(self, project: str, name: str) -> QueueKeys:
        member = f"{escape(project)}/{escape(name)}"
        base = f"{self.prefix}q:{{{member}}}:"
        return QueueKeys(member, tuple(base + part for part in QUEUE_PARTS),
                         base + "generation", base + "subscriptions",
                         base + "subscribers", base + "targets")

    def subscription(self, subscription_id: str) -> SubscriptionKeys:
        base = f"{self.subscription_prefix}{{{escape(subscription_id)}}}:"
        return SubscriptionKeys(*(base + part for part in SUBSCRIPTION_PARTS))

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
