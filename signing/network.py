"""Client-network binding for grants: CIDR normalisation and IP matching.

Networks are normalised once at mint time (``strict=True``, so host bits must
be zero), IPv4-mapped IPv6 networks are rewritten as IPv4, and the list is
sorted and de-duplicated so equal grants encode to equal claims. Client
addresses get the same IPv4-mapped treatment, so ``::ffff:10.1.2.3`` matches
``10.0.0.0/8``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from signing.errors import GrantError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_CIDRS = 8
# A binding wider than these is not a binding (0.0.0.0/0, ::/0, 2000::/3...).
MIN_PREFIX_V4 = 8
MIN_PREFIX_V6 = 32

_MAPPED_V4 = ipaddress.IPv6Network("::ffff:0:0/96")


def normalise_cidrs(cidrs: Iterable[str]) -> tuple[str, ...]:
    """Validate and canonicalise a CIDR list; raise GrantError if unusable."""
    if isinstance(cidrs, (str, bytes)):
        raise GrantError("cidrs must be a list of networks, not a string")
    networks = {_parse_network(value) for value in cidrs}
    if len(networks) > MAX_CIDRS:
        raise GrantError(f"at most {MAX_CIDRS} cidrs may be given")
    ordered = sorted(networks, key=lambda n: (n.version, n))  # type: ignore[arg-type]
    return tuple(str(network) for network in ordered)


def _parse_network(value: object) -> IPNetwork:
    if not isinstance(value, str):
        raise GrantError("each cidr must be a string")
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise GrantError(f"invalid cidr: {value!r}") from None
    network = _unmap_network(network)
    minimum = MIN_PREFIX_V4 if network.version == 4 else MIN_PREFIX_V6
    if network.prefixlen < minimum:
        raise GrantError(f"cidr too broad: {network} (minimum prefix /{minimum})")
    return network


def _unmap_network(network: IPNetwork) -> IPNetwork:
    """``::ffff:10.0.0.0/104`` -> ``10.0.0.0/8``; other networks unchanged."""
    if network.version == 6 and network.prefixlen >= 96:
        if network.subnet_of(_MAPPED_V4):  # type: ignore[arg-type]
            mapped = network.network_address.ipv4_mapped  # type: ignore[union-attr]
            return ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - 96}")
    return network


def normalise_ip(value: str) -> IPAddress:
    """Parse a client address; IPv4-mapped IPv6 becomes IPv4.

    Raises ValueError for anything that is not a plain address (including
    IPv6 zone ids such as ``fe80::1%eth0``, which a binding cannot vouch for).
    """
    if not isinstance(value, str):
        raise ValueError("client address must be a string")
    address = ipaddress.ip_address(value)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise ValueError("scoped IPv6 addresses are not accepted")
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def ip_in_cidrs(client_ip: str, cidrs: Iterable[str]) -> bool:
    """True if ``client_ip`` lies in one of ``cidrs``; False if unparsable."""
    try:
        address = normalise_ip(client_ip)
    except ValueError:
        return False
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr)
        if network.version == address.version and address in network:
            return True
    return False
