"""The SSRF guard: which destinations a webhook may reach.

The rule (dispatch.md §1.3, signing.md §4.2): resolve the host **once**,
judge **every** address it resolves to, refuse the lot if any is not public,
and connect only to the addresses judged (``subscriptions.http`` does that
inside the connection pool, so DNS rebinding between check and connect is
impossible).

An address is judged on every form it carries: IPv4-mapped IPv6
(``::ffff:a.b.c.d``) *is* the IPv4 address; IPv4-compatible (``::a.b.c.d``),
NAT64 (``64:ff9b::/96``) and 6to4 (``2002::/16``) addresses are judged by the
IPv4 they embed; Teredo (``2001::/32``) is refused outright, and its embedded
addresses are still checked against the metadata list. IPv6 is allowed only
inside global unicast ``2000::/3`` (plus the embedding prefixes). The tables
below are explicit so the verdict does not depend on the Python patch
release's ``ipaddress`` flags (3.11.7 calls ``192.0.0.8`` and ``fec0::1``
global).

Host names that are IPs in odd spellings (``2130706433``, ``0177.0.0.1``,
``0x7f.1``, ``127.1``) are recognised with ``inet_aton`` rules and judged
without asking the resolver.

Operators may allow CIDRs (tests allow ``127.0.0.1/32``); cloud metadata
addresses stay blocked whatever the allow-list says.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Sequence

from queues.errors import ConfigError
from subscriptions.errors import BlockedDestination, ResolutionFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> addresses as strings, in the order to try them.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

DEFAULT_PORTS = {"http": 80, "https": 443}


def _nets(*rows: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), reason) for cidr, reason in rows)


# Cloud metadata endpoints (AWS IMDS v4/v6, ECS task and EKS pod identity
# agents, Alibaba Cloud): never reachable, whatever the allow-list says.
METADATA = _nets(
    ("169.254.169.254/32", "metadata"), ("169.254.170.2/32", "metadata"),
    ("169.254.170.23/32", "metadata"), ("fd00:ec2::254/128", "metadata"),
    ("fd00:ec2::23/128", "metadata"), ("100.100.100.200/32", "metadata"),
)

# IANA special-purpose IPv4 blocks that are not globally reachable.
IPV4_DENY = _nets(
    ("0.0.0.0/8", "this-network"), ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "cgnat"), ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"), ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "ietf-protocol"), ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4-relay"), ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"), ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"), ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)

# IPv6 outside these is refused outright; inside, IPV6_DENY still applies.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_COMPAT = ipaddress.IPv6Network("::/96")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_6TO4 = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

IPV6_CLASSES = _nets(
    ("::/128", "unspecified"), ("::1/128", "loopback"),
    ("fe80::/10", "link-local"), ("fec0::/10", "site-local"),
    ("fc00::/7", "unique-local"), ("ff00::/8", "multicast"),
    ("64:ff9b:1::/48", "nat64-local"), ("100::/64", "discard"),
)
IPV6_DENY = _nets(
    ("2001::/23", "ietf-protocol"), ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
)


@dataclasses.dataclass(frozen=True, slots=True)
class SsrfPolicy:
    """Operator settings. ``allow`` opens CIDRs (never metadata);
    ``https_only`` refuses ``http``; ``ports`` restricts ports (None: any)."""

    allow: tuple[IPNetwork, ...] = ()
    https_only: bool = False
    ports: frozenset[int] | None = None

    @classmethod
    def from_config(cls, allow_cidrs: Iterable[str] = (), *, https_only: bool = False,
                    ports: Iterable[int] | None = None) -> SsrfPolicy:
        """Build from config values; a bad CIDR raises ``ConfigError``."""
        if isinstance(allow_cidrs, str):
            raise ConfigError("allow_cidrs must be a list of CIDRs")
        try:
            allow = tuple(ipaddress.ip_network(c, strict=True) for c in allow_cidrs)
        except (TypeError, ValueError) as ex:
            raise ConfigError(f"invalid allow-list CIDR: {ex}") from None
        return cls(allow, https_only, frozenset(ports) if ports is not None else None)


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A parsed subscriber URL: ``literal`` is set when the host is an IP."""

    scheme: str
    host: str
    port: int
    literal: IPAddress | None


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the event loop's ``getaddrinfo`` (TCP only), keeping the
    system's preference order and dropping duplicates."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as ex:
        raise ResolutionFailed(f"{host} did not resolve: {ex}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Guard:
    """Checks targets and resolves hosts to judged addresses."""

    def __init__(self, policy: SsrfPolicy = SsrfPolicy(),
                 resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self._resolver = resolver

    def check_url(self, url: str) -> Target:
        """The checks possible without DNS (scheme, port, IP literals); the
        API can use it to refuse obviously internal subscribers at creation.
        Raises ``BlockedDestination``."""
        try:
            parts = urllib.parse.urlsplit(url)
            host, port = parts.hostname or "", parts.port
        except ValueError:
            raise BlockedDestination("invalid-url", url) from None
        scheme = parts.scheme.lower()
        return self.check_target(scheme, host, port or DEFAULT_PORTS.get(scheme, 0))

    def check_target(self, scheme: str, host: str, port: int | None) -> Target:
        allowed = {"https"} if self.policy.https_only else set(DEFAULT_PORTS)
        if scheme not in allowed:
            raise BlockedDestination("scheme", host or scheme)
        if not host:
            raise BlockedDestination("invalid-url", host)
        port = port or DEFAULT_PORTS[scheme]
        if self.policy.ports is not None and port not in self.policy.ports:
            raise BlockedDestination("port", f"{host}:{port}")
        literal = parse_ip_host(host)
        if literal is not None:
            self._judge(host, literal)
        return Target(scheme, host, port, literal)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` once and return its addresses, all judged; raise
        ``BlockedDestination`` if *any* is refused, ``ResolutionFailed`` if
        there are none."""
        literal = parse_ip_host(host)
        if literal is not None:
            return [self._judge(host, literal)]
        answers = await self._resolver(host, port)
        if not answers:
            raise ResolutionFailed(f"{host} has no addresses")
        return [self._judge(host, _parse_answer(host, a)) for a in answers]

    def _judge(self, host: str, address: IPAddress) -> IPAddress:
        address = unmap(address)
        reason = blocked_reason(address, self.policy.allow)
        if reason is not None:
            raise BlockedDestination(reason, host, str(address))
        return address


def blocked_reason(address: IPAddress, allow: Sequence[IPNetwork] = ()
                   ) -> str | None:
    """Why ``address`` may not be reached, or None if it may.

    Every view of the address (itself and the IPv4 it embeds) must be public
    or allow-listed, and no view may be a metadata address."""
    views = [unmap(address), *embedded_ipv4(address)]
    for view in views:
        reason = _lookup(view, METADATA)
        if reason is not None:
            return reason
    for view in views:
        if any(view in net for net in allow if net.version == view.version):
            continue
        reason = _public_reason(view)
        if reason is not None:
            return reason
    return None


def unmap(address: IPAddress) -> IPAddress:
    """``::ffff:a.b.c.d`` is ``a.b.c.d`` on the wire; drop any scope id."""
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id:
            return ipaddress.IPv6Address(address.packed)
    return address


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-compatible, NAT64,
    6to4, and Teredo's server and (de-obfuscated) client."""
    if address.version == 4:
        return []
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _COMPAT or address in _NAT64:
        return [low32]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return []


def _public_reason(address: IPAddress) -> str | None:
    if address.version == 4:
        return _lookup(address, IPV4_DENY)
    reason = _lookup(address, IPV6_CLASSES)
    if reason is not None:
        return reason
    if address in _COMPAT or address in _NAT64:
        return None  # judged by the embedded IPv4
    if address in _TEREDO:
        return "teredo"
    if address in _6TO4:
        return None  # judged by the embedded IPv4
    if address not in _GLOBAL_UNICAST:
        return "reserved"
    return _lookup(address, IPV6_DENY)


def _lookup(address: IPAddress, table: Sequence[tuple[IPNetwork, str]]) -> str | None:
    for network, reason in table:
        if network.version == address.version and address in network:
            return reason
    return None


def _parse_answer(host: str, answer: str) -> IPAddress:
    try:
        return ipaddress.ip_address(answer)
    except ValueError:
        raise BlockedDestination("unparseable-address", host, answer) from None


# --- IP literals in host names ---------------------------------------------


def parse_ip_host(host: str) -> IPAddress | None:
    """The IP a URL host denotes, or None for a name.

    Accepts bracketed IPv6 (with or without a zone id) and every IPv4 form
    ``inet_aton`` accepts: 1 to 4 dot-separated parts, each decimal, octal
    (leading 0) or hex (0x), the last filling the remaining bytes. A single
    trailing dot is ignored, as resolvers do."""
    text = host.strip("[]")
    if text.endswith("."):
        text = text[:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    return parse_ipv4_loose(text)


def parse_ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_inet_part(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    *head, last = numbers  # type: ignore[misc]
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = sum(n << (8 * (3 - i)) for i, n in enumerate(head)) + last
    return ipaddress.IPv4Address(value)


_HEX = re.compile(r"0x[0-9a-f]*")
_OCTAL = re.compile(r"0[0-7]+")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def _inet_part(part: str) -> int | None:
    lowered = part.lower()
    if _HEX.fullmatch(lowered):
        return int(lowered[2:] or "0", 16)
    if _OCTAL.fullmatch(lowered):
        return int(lowered, 8)
    if _DECIMAL.fullmatch(lowered):
        return int(lowered, 10)
    return None
